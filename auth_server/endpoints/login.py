"""The sign-in page of a pending authorization request, for local users (AUTH_USERS).

GET shows the password form, POST checks it and answers 303 (never 307: the password must not be
re-posted to wherever the browser goes next, OAuth 2.1 section 7.5.4). The form carries only the
pending request's id and a CSRF token; `PendingAuthorizations.load` accepts a post only from the
browser that started the request, with the token of the page it was shown (see pending.py).

Sign-in posts are rate-limited per client IP (before the password is even looked at) and every
outcome is audited; the audit line names the user only when the name is a real user, because
an unknown "user name" is sometimes a password typed into the wrong box. With
UPSTREAM_OIDC_ISSUER the sign-in happens at the provider instead (`federated_login.py`).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from auth_server.endpoints.flow import Page, html_endpoint, next_step, page_url, redirect
from auth_server.endpoints.forms import read_form_pairs, single_values
from auth_server.pages import app_label, render
from auth_server.rate_limit import client_ip
from auth_server.services import FrontChannel
from auth_server.urls import endpoint_path


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
