"""The sign-in step when users sign in at an upstream OpenID provider (UPSTREAM_OIDC_ISSUER).

It replaces the local password form (see `auth_server.app`): everything before it (/authorize,
the pending request bound to this browser) and after it (our per-client consent page, the code)
is unchanged.

    GET /login?request=ID   signed in already: on to consent; otherwise a fresh upstream state
                            for this pending request and browser, and a 302 to the provider
    GET /login/callback     the provider's answer: state checked first (exactly, single use,
                            same browser), then code + PKCE + ID token (`upstream.py`); the
                            browser is signed in as the upstream user and goes on to consent
    POST /account/login     the account page's "sign in" button (CSRF-checked in `account.py`):
                            the same upstream flow, with no pending request; its callback
                            returns to the account page

An error the provider sends back with a valid state (the user cancelled there) ends our request
with `access_denied` to the MCP client; anything that cannot be trusted (no, unknown, replayed or
foreign state; a bad ID token) is an error page and ends nothing.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from auth_server.endpoints.account import (
    account_sign_in_path,
    form_expired,
    read_sign_in_form,
    signed_in_to_account,
)
from auth_server.endpoints.flow import Page, deny, html_endpoint, next_step, redirect
from auth_server.pages import error_page
from auth_server.rate_limit import client_ip
from auth_server.services import FrontChannel
from auth_server.upstream import (
    CALLBACK_PATH,
    UpstreamLoginFailed,
    UpstreamProvider,
    UpstreamStateRejected,
    UpstreamUnavailable,
)
from auth_server.urls import endpoint_path, issuer_path
from shared import retry_after

# What an upstream sign-in started from the account page carries instead of a pending request's
# id (which is never empty), so that its callback returns to the account page.
ACCOUNT_SIGN_IN = ""


def federated_login_routes(fc: FrontChannel) -> list[BaseRoute]:
    upstream = fc.upstream
    if upstream is None:
        raise ValueError("federated login needs UPSTREAM_OIDC_ISSUER (FrontChannel.upstream)")
    return [
        Route(endpoint_path(fc.settings, "login"), upstream_login_page(fc, upstream), methods=["GET"]),
        Route(issuer_path(fc.settings) + CALLBACK_PATH, upstream_callback(fc, upstream), methods=["GET"]),
        Route(account_sign_in_path(fc), upstream_account_sign_in(fc, upstream), methods=["POST"]),
    ]


def _unavailable() -> Response:
    return error_page(
        "Sign-in is temporarily unavailable",
        "The identity provider cannot be reached. Try again in a few seconds.",
        status_code=503,
        headers={"Retry-After": str(retry_after.UNAVAILABLE)},
    )


def upstream_login_page(fc: FrontChannel, upstream: UpstreamProvider) -> Page:
    @html_endpoint
    async def login(request: Request) -> Response:
        request_id = request.query_params.get("request", "")
        pending, session = await fc.pending.load(request_id, await fc.sessions.current(request), csrf=None)
        if session.subject is not None:
            return await next_step(fc, request_id, pending, session, after_post=False)
        await fc.limiter.check("login", request)
        try:
            url = await upstream.begin(request_id, session.binding)
        except UpstreamUnavailable:
            return _unavailable()
        return redirect(url, after_post=False)

    return login


def upstream_account_sign_in(fc: FrontChannel, upstream: UpstreamProvider) -> Page:
    @html_endpoint
    async def sign_in(request: Request) -> Response:
        if await read_sign_in_form(fc, request) is None:
            return form_expired()
        session, _ = await fc.sessions.current_or_new(request)
        try:
            url = await upstream.begin(ACCOUNT_SIGN_IN, session.binding)
        except UpstreamUnavailable:
            return _unavailable()
        response = redirect(url, after_post=True)
        fc.sessions.set_cookie(response, session)
        return response

    return sign_in


def upstream_callback(fc: FrontChannel, upstream: UpstreamProvider) -> Page:
    @html_endpoint
    async def callback(request: Request) -> Response:
        await fc.limiter.check("login", request)
        params = request.query_params
        session = await fc.sessions.current(request)
        try:
            if session is None or len(params.getlist("state")) > 1:
                raise UpstreamStateRejected
            record = await upstream.claim(params.get("state"), session.binding)
        except UpstreamStateRejected:
            fc.audit.record("login_failed", ip=client_ip(request), reason="upstream: bad or missing state")
            return error_page(
                "This sign-in response is not valid",
                "It has expired, was already used, or belongs to a sign-in started in another "
                "browser. Go back to the application and start again.",
            )
        pending = None
        if record.request_id != ACCOUNT_SIGN_IN:
            pending, session = await fc.pending.load(record.request_id, session, csrf=None)
        client_id = pending.client_id if pending is not None else None

        if params.get("error") and params.get("iss") in (None, upstream.issuer):
            fc.audit.record(
                "login_failed",
                ip=client_ip(request),
                client_id=client_id,
                reason=f"upstream: {params['error'][:64]}",
            )
            if pending is None:
                return redirect(endpoint_path(fc.settings, "account"), after_post=False)
            return redirect(await deny(fc, record.request_id, pending), after_post=False)
        try:
            identity = await upstream.finish(record, params.get("code"), params.get("iss"))
        except UpstreamUnavailable:
            return _unavailable()
        except UpstreamLoginFailed as failed:
            fc.audit.record(
                "login_failed",
                ip=client_ip(request),
                client_id=client_id,
                reason=f"upstream: {failed.reason}"[:200],
            )
            return error_page(
                "Sign-in failed",
                "The identity provider's answer could not be verified. Go back to the application "
                "and start again.",
            )

        await upstream.remember_profile(identity)
        signed_in = await fc.sessions.sign_in(
            session, identity.subject, auth_time=identity.auth_time or int(fc.clock())
        )
        fc.audit.record(
            "login_succeeded",
            ip=client_ip(request),
            client_id=client_id,
            subject=identity.subject,
            endpoint="upstream",
        )
        if pending is None:
            return signed_in_to_account(fc, signed_in)
        response = await next_step(fc, record.request_id, pending, signed_in, after_post=False)
        fc.sessions.set_cookie(response, signed_in)
        return response

    return callback
