"""The steps of the authorization flow that /authorize and the sign-in and consent pages share.

The flow, one step per request, its state server-side (see `pending.py`):

    /authorize -> /login (unless signed in) -> /consent (unless remembered) -> redirect_uri

`next_step` decides where a request goes next from wherever it is; `approve` ends it with a
code and `deny` with `access_denied`. Every redirect to the client carries `state` (byte-exact) and `iss`
(RFC 9207), successes and errors alike.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Literal
from urllib.parse import quote, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from auth_server import crypto
from auth_server.endpoints.forms import BadForm
from auth_server.errors import error_description
from auth_server.models import AuthorizationCodeRecord, Client
from auth_server.pages import error_page
from auth_server.pending import PendingAuthorization, PendingRequestRejected
from auth_server.rate_limit import RateLimited, client_ip
from auth_server.redirect_uris import is_loopback_redirect
from auth_server.services import FrontChannel
from auth_server.sessions import BrowserSession
from auth_server.urls import endpoint_path
from auth_server.users import SignInBusy
from shared import retry_after
from shared.settings import Settings
from shared.storage import records
from shared.storage.base import StorageUnavailable
from shared.storage.records import code_key

logger = logging.getLogger(__name__)

REDIRECT_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def client_redirect_url(settings: Settings, redirect_uri: str, params: dict[str, str | None]) -> str:
    """redirect_uri with the response parameters and `iss` appended to its own query, if any."""
    values = {name: value for name, value in params.items() if value is not None}
    if "error_description" in values:
        values["error_description"] = error_description(values["error_description"])
    values["iss"] = settings.issuer
    separator = "&" if urlsplit(redirect_uri).query else ("" if redirect_uri.endswith("?") else "?")
    return redirect_uri + separator + urlencode(values, quote_via=quote, safe="")


def redirect(url: str, *, after_post: bool) -> RedirectResponse:
    """302 after a GET, 303 after a POST (never 307, which would re-post the password)."""
    return RedirectResponse(url, status_code=303 if after_post else 302, headers=REDIRECT_HEADERS)


def redirects_automatically(client: Client, redirect_uri: str) -> bool:
    """Whether an error may be sent to the client's redirect URI without asking the user.

    RFC 9700 section 4.11.2: anyone can register a client whose redirect URI is a phishing page
    and send users to /authorize with a bad parameter, using this server as an open redirector.
    Configured clients are vouched for by the operator, and loopback URIs only reach the user's
    own machine; any other error redirect waits for the user to click through a page that names
    the destination.
    """
    return client.source == "preregistered" or is_loopback_redirect(redirect_uri)


def may_approve_silently(client: Client | None) -> bool:
    """Whether a remembered consent may answer with a code without showing the user any page.

    RFC 8252 section 8.6: a client that cannot authenticate (a public client, auth method none)
    cannot prove it is the program the user approved. Any program on the machine can send the
    user's browser to /authorize with that client_id, its own PKCE pair and its own loopback
    port, and with the 8-hour sign-in it would get a code straight back. So such a request always
    shows at least the one-click continue page (consent page, `login.consent_page`); only a
    confidential client, whose code is useless without its secret, is approved silently.
    """
    return client is not None and not client.is_public


def page_url(settings: Settings, page: Literal["login", "consent"], request_id: str, **extra: str) -> str:
    query = urlencode({"request": request_id, **extra})
    return f"{endpoint_path(settings, page)}?{query}"


async def next_step(
    fc: FrontChannel,
    request_id: str,
    pending: PendingAuthorization,
    session: BrowserSession,
    *,
    after_post: bool,
) -> Response:
    """Send the browser to sign-in, to consent (or the continue page), or back with a code when a
    confidential client's consent is remembered (`may_approve_silently`)."""
    if session.subject is None:
        return redirect(page_url(fc.settings, "login", request_id), after_post=after_post)
    remembered = await fc.consents.recall(session.subject, pending.client_id)
    if fc.consents.covers(
        remembered, pending.scopes, pending.registered_redirect_uri
    ) and may_approve_silently(await fc.registry.get(pending.client_id)):
        return redirect(await approve(fc, request_id, pending, session), after_post=after_post)
    return redirect(page_url(fc.settings, "consent", request_id), after_post=after_post)


async def approve(
    fc: FrontChannel, request_id: str, pending: PendingAuthorization, session: BrowserSession
) -> str:
    """End the request with a fresh authorization code; returns the client redirect URL."""
    if session.subject is None or session.record.auth_time is None:
        raise PendingRequestRejected
    if not await fc.pending.finish(request_id):
        raise PendingRequestRejected  # already answered (double submit or replay)
    code = crypto.new_credential()
    record = AuthorizationCodeRecord(
        client_id=pending.client_id,
        redirect_uri=pending.redirect_uri,
        redirect_uri_in_request=pending.redirect_uri_in_request,
        code_challenge=pending.code_challenge,
        scopes=pending.scopes,
        resource=pending.resource,
        subject=session.subject,
        auth_time=session.record.auth_time,
        issued_at=int(fc.clock()),
        grant_id=crypto.new_credential(),
        dpop_jkt=pending.dpop_jkt,
    )
    await records.write(fc.store, code_key(code), record, ttl=fc.settings.authorization_code_ttl)
    await fc.registry.keep(pending.client_id)  # a user vouched for it: a registration stays
    return client_redirect_url(fc.settings, pending.redirect_uri, {"code": code, "state": pending.state})


async def deny(fc: FrontChannel, request_id: str, pending: PendingAuthorization) -> str:
    """End the request with `access_denied`; returns the client redirect URL."""
    if not await fc.pending.finish(request_id):
        raise PendingRequestRejected
    params = {
        "error": "access_denied",
        "error_description": "the user denied the request",
        "state": pending.state,
    }
    return client_redirect_url(fc.settings, pending.redirect_uri, params)


Page = Callable[[Request], Awaitable[Response]]


def html_endpoint(handler: Page) -> Page:
    """Turns the failures every page shares into HTML answers (never a 500, never a redirect)."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except PendingRequestRejected:
            return error_page(
                "This sign-in request is no longer valid",
                "It has expired, was already answered, or was started in another browser. "
                "Go back to the application and start again.",
            )
        except BadForm as exc:
            return error_page("Bad request", str(exc))
        except RateLimited as exc:
            return error_page(
                "Too many attempts",
                f"Wait {exc.retry_after} seconds, then try again.",
                status_code=429,
                headers={"Retry-After": str(exc.retry_after)},
            )
        except SignInBusy:
            return error_page(
                "Busy",
                "Too many sign-ins are being checked right now. Try again in a few seconds.",
                status_code=503,
                headers={"Retry-After": str(retry_after.BUSY)},
            )
        except StorageUnavailable:
            logger.warning("storage unavailable during %s from %s", request.url.path, client_ip(request))
            return error_page(
                "Temporarily unavailable",
                "The sign-in service cannot reach its storage. Try again in a few seconds.",
                status_code=503,
                headers={"Retry-After": str(retry_after.UNAVAILABLE)},
            )

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint
