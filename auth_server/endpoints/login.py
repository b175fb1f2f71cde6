"""The sign-in and consent pages of a pending authorization request.

GET shows a form, POST handles it and answers 303 (never 307: the password must not be
re-posted to wherever the browser goes next, OAuth 2.1 section 7.5.4). Each form carries only
the pending request's id and a CSRF token; `PendingAuthorizations.load` accepts a post only from
the browser that started the request, with the token of the page it was shown (see pending.py).

Sign-in posts are rate-limited per client IP (before the password is even looked at) and every
outcome is audited; the audit line names the user only when the name is a real user, because
an unknown "user name" is sometimes a password typed into the wrong box.

A name a client gave itself (registration, metadata document) is shown marked as unverified
(`AppLabel`): anyone can register "Claude Code". When the user's consent is already remembered
but the client cannot authenticate (`front_channel.may_approve_silently`), the consent page is
the one-click continue page instead: the app, where the code goes, Continue or Cancel.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from auth_server.endpoints.client_metadata import looks_like_metadata_url
from auth_server.front_channel import (
    BadForm,
    FrontChannel,
    Page,
    approve,
    deny,
    html_endpoint,
    next_step,
    page_url,
    read_form_pairs,
    redirect,
    single_values,
)
from auth_server.models import Client
from auth_server.pages import render
from auth_server.pending import PendingAuthorization, PendingRequestRejected
from auth_server.rate_limit import client_ip
from auth_server.redirect_uris import display_host, is_loopback_redirect, is_private_use_redirect
from auth_server.urls import endpoint_path
from shared import scopes as scope_model


def login_page(fc: FrontChannel) -> Page:
    @html_endpoint
    async def login(request: Request) -> Response:
        request_id = request.query_params.get("request", "")
        pending, session = await fc.pending.load(request_id, await fc.sessions.current(request), csrf=None)
        if session.subject is not None:
            return await next_step(fc, request_id, pending, session, after_post=False)
        client = await fc.registry.get(pending.client_id)
        return render(
            "login.html",
            app=app_label(client, pending.client_id),
            login_url=endpoint_path(fc.settings, "login"),
            request_id=request_id,
            csrf=await fc.pending.new_csrf_token(request_id, pending),
            failed=request.query_params.get("failed") == "1",
        )

    return login


def login_form(fc: FrontChannel) -> Page:
    @html_endpoint
    async def sign_in(request: Request) -> Response:
        await fc.limiter.check("login", request)
        fields = single_values(await read_form_pairs(request))
        request_id = fields.get("request", "")
        pending, session = await fc.pending.load(
            request_id, await fc.sessions.current(request), csrf=fields.get("csrf", "")
        )
        username, password = fields.get("username", ""), fields.get("password", "")

        subject = await fc.users.authenticate(username, password)
        if subject is None:
            fc.audit.record(
                "login_failed",
                ip=client_ip(request),
                client_id=pending.client_id,
                subject=username if fc.users.knows(username) else None,
                reason="wrong password" if fc.users.knows(username) else "unknown user",
            )
            return redirect(page_url(fc.settings, "login", request_id, failed="1"), after_post=True)

        signed_in = await fc.sessions.sign_in(session, subject, auth_time=int(fc.clock()))
        fc.audit.record(
            "login_succeeded", ip=client_ip(request), client_id=pending.client_id, subject=subject
        )
        response = await next_step(fc, request_id, pending, signed_in, after_post=True)
        fc.sessions.set_cookie(response, signed_in)
        return response

    return sign_in


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


@dataclass(frozen=True, slots=True)
class AppLabel:
    """How a page names the application (templates/app_label.html renders it)."""

    name: str
    verified: bool  # the operator vouches for the name (a configured client)
    document_host: str | None  # a CIMD client: the host its metadata document came from


def app_label(client: Client | None, client_id: str) -> AppLabel:
    """`client` is None when it is not known right now (the account page lists apps without
    fetching metadata documents): a URL client_id still names its document's host."""
    name = (client.client_name if client else None) or client_id
    from_document = client.source == "metadata_document" if client else looks_like_metadata_url(client_id)
    return AppLabel(
        name=name,
        verified=client is not None and client.name_is_verified,
        document_host=display_host(client_id) if from_document else None,
    )


def _localhost_only(client: Client | None, pending: PendingAuthorization) -> bool:
    uris = client.redirect_uris if client else (pending.registered_redirect_uri,)
    return all(is_loopback_redirect(uri) for uri in uris)
