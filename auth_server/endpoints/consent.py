"""The consent page of a pending authorization request: what the app asks for, Allow or Deny.

GET shows the form, POST records the decision and answers 303 with the code (or
`access_denied`) for the client. The form carries only the pending request's id and a CSRF token
(see pending.py), like the sign-in form.

A name a client gave itself (registration, metadata document) is shown marked as unverified
(`pages.AppLabel`): anyone can register "Claude Code". When the user's consent is already
remembered but the client cannot authenticate (`flow.may_approve_silently`), the consent page is
the one-click continue page instead: the app, where the code goes, Continue or Cancel.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from auth_server.endpoints.flow import Page, approve, deny, html_endpoint, page_url, redirect
from auth_server.endpoints.forms import BadForm, read_form_pairs, single_values
from auth_server.models import Client
from auth_server.pages import app_label, render
from auth_server.pending import PendingAuthorization, PendingRequestRejected
from auth_server.rate_limit import client_ip
from auth_server.redirect_uris import display_host, is_loopback_redirect, is_private_use_redirect
from auth_server.services import FrontChannel
from auth_server.urls import endpoint_path
from shared import scopes as scope_model


def consent_page(fc: FrontChannel) -> Page:
    @html_endpoint
    async def consent(request: Request) -> Response:
        request_id = request.query_params.get("request", "")
        pending, session = await fc.pending.load(request_id, await fc.sessions.current(request), csrf=None)
        if session.subject is None:
            return redirect(page_url(fc.settings, "login", request_id), after_post=False)
        client = await fc.registry.get(pending.client_id)
        remembered = await fc.consents.recall(session.subject, pending.client_id)
        already = scope_model.CATALOGUE.expand(remembered.scopes)
        remembered_covers = fc.consents.covers(remembered, pending.scopes, pending.registered_redirect_uri)
        return render(
            "continue.html" if remembered_covers else "consent.html",
            app=app_label(client, pending.client_id),
            client_id=pending.client_id,
            redirect_host=display_host(pending.redirect_uri),
            # a private-use scheme names no host: show the whole link, and what it means
            app_link=pending.redirect_uri
            if is_private_use_redirect(pending.redirect_uri, fc.registry.native_schemes)
            else None,
            app_scheme=pending.redirect_uri.partition(":")[0],
            localhost_only=_localhost_only(client, pending),
            scopes=[
                {
                    "name": scope,
                    "description": scope_model.CATALOGUE.describe(scope),
                    "new": bool(already) and scope not in already,
                }
                for scope in pending.scopes
            ],
            subject=session.subject,
            resource=pending.resource,
            consent_url=endpoint_path(fc.settings, "consent"),
            account_url=endpoint_path(fc.settings, "account"),
            logout_url=endpoint_path(fc.settings, "logout"),
            request_id=request_id,
            csrf=await fc.pending.new_csrf_token(request_id, pending),
        )

    return consent


def consent_form(fc: FrontChannel) -> Page:
    @html_endpoint
    async def decide(request: Request) -> Response:
        fields = single_values(await read_form_pairs(request))
        request_id = fields.get("request", "")
        pending, session = await fc.pending.load(
            request_id, await fc.sessions.current(request), csrf=fields.get("csrf", "")
        )
        if session.subject is None:
            raise PendingRequestRejected
        decision = fields.get("decision")
        if decision == "approve":
            await fc.apps.remember_consent(
                session.subject, pending.client_id, pending.scopes, pending.registered_redirect_uri
            )
            url = await approve(fc, request_id, pending, session)
            fc.audit.record(
                "consent_granted",
                ip=client_ip(request),
                client_id=pending.client_id,
                subject=session.subject,
                scope=" ".join(pending.scopes),
                resource=pending.resource,
            )
        elif decision == "deny":
            url = await deny(fc, request_id, pending)
            fc.audit.record(
                "consent_denied", ip=client_ip(request), client_id=pending.client_id, subject=session.subject
            )
        else:
            raise BadForm("decision must be approve or deny")
        return redirect(url, after_post=True)

    return decide


def _localhost_only(client: Client | None, pending: PendingAuthorization) -> bool:
    uris = client.redirect_uris if client else (pending.registered_redirect_uri,)
    return all(is_loopback_redirect(uri) for uri in uris)
