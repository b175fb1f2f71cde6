"""The account pages: the apps a signed-in user authorized (revoking one), signing in to see
them, and signing out of the authorization server.

    GET  /account          signed in: every app the user authorized (name, whether that name is
                           verified, where it redirects, what it may do, when it last got a
                           token); signed out: a sign-in form (local users) or button (federated)
    POST /account/revoke   end one app at once: grants, refresh and access tokens (opaque and
                           JWT), remembered consent (`authorized_apps.py`)
    POST /account/login    sign in for the account page: local password, or off to the provider
    GET  /logout           a confirmation page (a GET never signs anyone out: links, prefetches
                           and <img> tags cannot end a session)
    POST /logout           end the browser session server-side and clear its cookie

Every form is CSRF-protected. Signed in, its token is an HMAC of the session id (which only the
cookie carries) and the form's purpose: a page from another site can neither read it nor make
it, and it dies with the session. The sign-in form of a signed-out browser has no session yet
(a GET stores nothing), so it is a double-submit token: a random value in a SameSite=Strict,
HttpOnly cookie (`__Host-` on https) that the form must repeat. The revoke form names the app by
client_id only; the user is always the session's, so nobody can revoke another user's app.

There is no post-logout redirect (OpenID RP-initiated logout's `post_logout_redirect_uri`): MCP
clients end their access with RFC 7009 revocation, not by signing the user out, and a redirect
parameter on a logout endpoint is an open redirector unless tied to a registered URI and an ID
token hint, neither of which this server has. Federated sign-in: signing out here ends our session
only; the provider's own session is the provider's business (the page says so).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from auth_server import crypto
from auth_server.authorized_apps import AuthorizedApp
from auth_server.endpoints.flow import Page, html_endpoint, redirect
from auth_server.endpoints.forms import read_form_pairs, single_values
from auth_server.models import Client
from auth_server.pages import AppLabel, app_label, error_page, render
from auth_server.rate_limit import client_ip
from auth_server.redirect_uris import display_host, is_private_use_redirect
from auth_server.services import FrontChannel
from auth_server.sessions import BrowserSession
from auth_server.urls import endpoint_path
from shared import scopes as scope_model

FormPurpose = Literal["revoke", "logout"]
MAX_CLIENT_ID_LENGTH = 2000
SIGN_IN_COOKIE_TTL = 600


def account_routes(fc: FrontChannel) -> list[BaseRoute]:
    account = endpoint_path(fc.settings, "account")
    logout = endpoint_path(fc.settings, "logout")
    return [
        Route(account, account_page(fc), methods=["GET"]),
        Route(f"{account}/revoke", revoke_form(fc), methods=["POST"]),
        Route(logout, logout_page(fc), methods=["GET"]),
        Route(logout, logout_form(fc), methods=["POST"]),
    ]


def account_sign_in_path(fc: FrontChannel) -> str:
    """Where the signed-out account page posts (served by `local_account_sign_in`, or with
    UPSTREAM_OIDC_ISSUER by `federated_login`)."""
    return f"{endpoint_path(fc.settings, 'account')}/login"


# -- CSRF ----------------------------------------------------------------------------------------


def session_csrf(session: BrowserSession, purpose: FormPurpose) -> str:
    """The CSRF token of one kind of form for one session (see the module docstring)."""
    return hmac.new(session.session_id.encode(), f"csrf:{purpose}".encode(), hashlib.sha256).hexdigest()


def csrf_matches(session: BrowserSession, purpose: FormPurpose, presented: str | None) -> bool:
    return presented is not None and crypto.constant_time_equals(session_csrf(session, purpose), presented)


def sign_in_cookie_name(fc: FrontChannel) -> str:
    return fc.sessions.cookie("mcp_as_signin")


# -- what the page shows about an app --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AppView:
    """One app as the account page shows it; every value is escaped by the template."""

    client_id: str
    label: AppLabel  # its name, and whether anyone vouches for it (as on the consent page)
    redirect_hosts: tuple[str, ...]
    scopes: tuple[Mapping[str, str], ...]
    last_used: str | None
    grants: int


def shown_redirect(uri: str, native_schemes: frozenset[str]) -> str:
    """Where a redirect URI sends the browser, as a person should read it: the parsed host (and
    port), or for an app link the scheme that opens an app."""
    if is_private_use_redirect(uri, native_schemes):
        return f"an app on your device ({uri.partition(':')[0]}:)"
    return display_host(uri)


def app_view(app: AuthorizedApp, client: Client | None, native_schemes: frozenset[str]) -> AppView:
    uris = app.consent.redirect_uris or (client.redirect_uris if client else ())
    last_used = app.last_used_at
    return AppView(
        client_id=app.client_id,
        label=app_label(client, app.client_id),
        redirect_hosts=tuple(dict.fromkeys(shown_redirect(uri, native_schemes) for uri in uris)),
        scopes=tuple(
            {"name": scope, "description": scope_model.CATALOGUE.describe(scope)} for scope in app.scopes
        ),
        last_used=None if last_used is None else time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(last_used)),
        grants=len(app.grants),
    )


# -- pages ---------------------------------------------------------------------------------------


def account_page(fc: FrontChannel) -> Page:
    @html_endpoint
    async def account(request: Request) -> Response:
        session = await fc.sessions.current(request)
        if session is None or session.subject is None:
            return _sign_in_page(fc, failed=request.query_params.get("failed") == "1")
        apps = await fc.apps.of_user(session.subject)
        views = [
            app_view(app, await fc.registry.known(app.client_id), fc.registry.native_schemes) for app in apps
        ]
        return render(
            "account.html",
            subject=session.subject,
            apps=views,
            revoked=request.query_params.get("revoked") == "1",
            revoke_url=f"{endpoint_path(fc.settings, 'account')}/revoke",
            revoke_csrf=session_csrf(session, "revoke"),
            logout_url=endpoint_path(fc.settings, "logout"),
        )

    return account


def _sign_in_page(fc: FrontChannel, *, failed: bool) -> Response:
    token = secrets.token_urlsafe(32)
    response = render(
        "account_signin.html",
        login_url=account_sign_in_path(fc),
        csrf=token,
        federated=fc.settings.upstream_oidc_issuer,
        failed=failed,
    )
    response.set_cookie(
        sign_in_cookie_name(fc),
        token,
        max_age=SIGN_IN_COOKIE_TTL,
        path="/",
        secure=fc.sessions.secure,
        httponly=True,
        samesite="strict",
    )
    return response


def form_expired() -> Response:
    return error_page(
        "This form has expired",
        "Reload the page and try again.",
        status_code=403,
    )


async def read_sign_in_form(fc: FrontChannel, request: Request) -> dict[str, str] | None:
    """The account page's sign-in form, rate-limited like every sign-in; None when its
    double-submit CSRF token does not match the browser's cookie."""
    await fc.limiter.check("login", request)
    fields = single_values(await read_form_pairs(request))
    cookie = request.cookies.get(sign_in_cookie_name(fc))
    presented = fields.get("csrf")
    if not cookie or not presented or not crypto.constant_time_equals(cookie, presented):
        return None
    return fields


def signed_in_to_account(fc: FrontChannel, session: BrowserSession) -> Response:
    """Back to the account page, signed in (the sign-in form's cookie is spent)."""
    response = redirect(endpoint_path(fc.settings, "account"), after_post=True)
    fc.sessions.set_cookie(response, session)
    response.delete_cookie(
        sign_in_cookie_name(fc), path="/", secure=fc.sessions.secure, httponly=True, samesite="strict"
    )
    return response


def local_account_sign_in(fc: FrontChannel) -> Page:
    """POST /account/login with local users: the password form of the account page."""

    @html_endpoint
    async def sign_in(request: Request) -> Response:
        fields = await read_sign_in_form(fc, request)
        if fields is None:
            return form_expired()
        username, password = fields.get("username", ""), fields.get("password", "")
        subject = await fc.users.authenticate(username, password)
        if subject is None:
            known = fc.users.knows(username)
            fc.audit.record(
                "login_failed",
                ip=client_ip(request),
                subject=username if known else None,
                endpoint="account",
                reason="wrong password" if known else "unknown user",
            )
            return redirect(f"{endpoint_path(fc.settings, 'account')}?failed=1", after_post=True)
        session, _ = await fc.sessions.current_or_new(request)
        signed_in = await fc.sessions.sign_in(session, subject, auth_time=int(fc.clock()))
        fc.audit.record("login_succeeded", ip=client_ip(request), subject=subject, endpoint="account")
        return signed_in_to_account(fc, signed_in)

    return sign_in


def revoke_form(fc: FrontChannel) -> Page:
    @html_endpoint
    async def revoke(request: Request) -> Response:
        fields = single_values(await read_form_pairs(request))
        session = await fc.sessions.current(request)
        if session is None or session.subject is None:
            return error_page(
                "You are signed out",
                "Sign in on the account page, then revoke the app there.",
                status_code=401,
            )
        if not csrf_matches(session, "revoke", fields.get("csrf")):
            return form_expired()
        client_id = fields.get("client_id", "")
        if (
            not client_id
            or len(client_id) > MAX_CLIENT_ID_LENGTH
            or not await fc.apps.has_authorized(session.subject, client_id)
        ):
            return error_page(
                "No such app",
                "You have not authorized this app, or its access has already ended.",
                status_code=404,
            )
        await fc.apps.revoke(session.subject, client_id, reason="revoked by the user", ip=client_ip(request))
        return redirect(f"{endpoint_path(fc.settings, 'account')}?revoked=1", after_post=True)

    return revoke


def logout_page(fc: FrontChannel) -> Page:
    @html_endpoint
    async def logout(request: Request) -> Response:
        session = await fc.sessions.current(request)
        signed_in = session is not None and session.subject is not None
        return render(
            "logout.html",
            subject=session.subject if session is not None else None,
            csrf=session_csrf(session, "logout") if session is not None and signed_in else "",
            logout_url=endpoint_path(fc.settings, "logout"),
            account_url=endpoint_path(fc.settings, "account"),
            upstream=fc.settings.upstream_oidc_issuer,
        )

    return logout


def logout_form(fc: FrontChannel) -> Page:
    @html_endpoint
    async def logout(request: Request) -> Response:
        fields = single_values(await read_form_pairs(request))
        session = await fc.sessions.current(request)
        response = redirect(endpoint_path(fc.settings, "logout"), after_post=True)
        if session is None:
            fc.sessions.clear_cookie(response)  # nothing to end; an expired cookie goes too
            return response
        if session.subject is None:
            return response  # not signed in: nothing to end (its pending sign-ins stay usable)
        if not csrf_matches(session, "logout", fields.get("csrf")):
            return form_expired()
        await fc.sessions.end(session)
        fc.sessions.clear_cookie(response)
        if session.subject is not None:
            fc.audit.record("logout", ip=client_ip(request), subject=session.subject)
        return response

    return logout
