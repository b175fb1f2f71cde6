"""The authorization endpoint, GET and POST /authorize (OAuth 2.1 section 4.1.1).

Validation runs in the order that decides where an error may go:

1. `identify_client`: client_id and redirect_uri. Until both are known good, nothing is
   redirected: errors are an HTML page (section 4.1.2.1), because redirecting to an unverified
   URI would make this server an open redirector. A URL client_id is resolved as a client ID
   metadata document here (a failed fetch is such an error too).
2. `check_request`: everything else. Errors go back to the client as
   `error`/`error_description`/`state`/`iss` (subject to `redirects_automatically`).

Parameters: unknown ones are ignored, empty ones count as absent, and a repeated one is
`invalid_request`, except `resource`, which RFC 8707 allows to repeat. `dpop_jkt` (RFC 9449
section 10) binds the code to a DPoP key: the token request must then prove possession of it.

A valid request is kept server-side as a pending authorization and the browser is sent on to
sign in, to consent, or straight back with a code when consent is remembered (`flow.py`).

What an anonymous caller can make this endpoint keep is bounded (each number in one place):
`RATE_LIMIT_PER_MINUTE` requests per client address (`rate_limit.client_ip`), counted before any
work; a query or body of at most MAX_FORM_BYTES and MAX_FORM_FIELDS, and no parameter (`state`
included) longer than MAX_PARAMETER_LENGTH, checked before anything is looked up; at most
`pending.MAX_PENDING_PER_SESSION` pending requests per browser session; and each lives
`pending.PENDING_TTL` (five minutes), its anonymous session as long.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from auth_server.clients.registry import StoreClientRegistry, UnknownClient
from auth_server.dpop import JKT
from auth_server.endpoints.flow import (
    Page,
    client_redirect_url,
    html_endpoint,
    next_step,
    redirect,
    redirects_automatically,
)
from auth_server.endpoints.forms import parse_form, read_form_pairs
from auth_server.errors import AuthorizationErrorCode
from auth_server.models import Client
from auth_server.pages import error_page
from auth_server.pending import AuthorizationRequest
from auth_server.rate_limit import client_ip
from auth_server.redirect_uris import (
    UnacceptableRedirectUri,
    check_registrable,
    display_host,
    find_match,
    is_private_use_redirect,
)
from auth_server.resources import default_resource, is_served, is_well_formed_resource
from auth_server.services import FrontChannel
from shared import scopes as scope_model
from shared.settings import Settings

PKCE_CHALLENGE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")  # RFC 7636 section 4.2
MAX_PARAMETER_LENGTH = 2000  # state and every other parameter; a URI needs no more either
REPEATABLE = frozenset({"resource"})

logger = logging.getLogger(__name__)


class RequestNotTrusted(Exception):
    """client_id or redirect_uri is unusable: show a page, never redirect."""

    def __init__(self, title: str, description: str) -> None:
        super().__init__(description)
        self.title = title
        self.description = description


class AuthorizationError(Exception):
    """An error for the client, sent to its (verified) redirect URI."""

    def __init__(self, error: AuthorizationErrorCode, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description


class AuthorizationParameters:
    """The request's parameters with OAuth's rules for repeats and empty values."""

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self._values: dict[str, list[str]] = {}
        for name, value in pairs:
            self._values.setdefault(name, []).append(value)

    def oversized(self) -> str | None:
        """The first parameter with a value longer than MAX_PARAMETER_LENGTH, if any."""
        for name, values in self._values.items():
            if any(len(value) > MAX_PARAMETER_LENGTH for value in values):
                return name
        return None

    def is_repeated(self, name: str) -> bool:
        return len(self._values.get(name, ())) > 1

    def repeated(self) -> list[str]:
        return [name for name in self._values if self.is_repeated(name) and name not in REPEATABLE]

    def one(self, name: str) -> str | None:
        """The value, None when absent or empty (callers check `repeated` first)."""
        values = self._values.get(name)
        return values[0] if values and values[0] else None

    def every(self, name: str) -> list[str]:
        return [value for value in self._values.get(name, ()) if value]

    def details(self) -> dict[str, str]:
        """What the error page shows a developer (escaped by the template)."""
        shown = ("client_id", "redirect_uri", "state", "response_type", "scope", "resource")
        values = self._values
        return {name: " | ".join(values[name])[:MAX_PARAMETER_LENGTH] for name in shown if name in values}


@dataclass(frozen=True, slots=True)
class VerifiedRedirect:
    client: Client
    redirect_uri: str
    registered_redirect_uri: str
    redirect_uri_in_request: bool


@dataclass(frozen=True, slots=True)
class CheckedRequest:
    code_challenge: str
    scopes: tuple[str, ...]
    resource: str
    dpop_jkt: str | None = None


async def identify_client(
    params: AuthorizationParameters, registry: StoreClientRegistry, requester: str
) -> VerifiedRedirect:
    for name in ("client_id", "redirect_uri"):
        if params.is_repeated(name):
            raise RequestNotTrusted("Invalid request", f"The parameter {name} is repeated.")
    client_id = params.one("client_id")
    if client_id is None:
        raise RequestNotTrusted("Invalid request", "The request has no client_id.")
    try:
        client = await registry.resolve(client_id, requester=requester)
    except UnknownClient as exc:
        raise RequestNotTrusted("Unknown application", f"{exc}.") from None

    requested = params.one("redirect_uri")
    if requested is None:
        if len(client.redirect_uris) != 1:
            raise RequestNotTrusted(
                "Invalid request",
                "The request has no redirect_uri, and the application does not have exactly one registered.",
            )
        only = client.redirect_uris[0]
        return VerifiedRedirect(client, only, only, redirect_uri_in_request=False)
    # The same rules as at registration, so a URI registered before a rule existed (or a scheme
    # removed from NATIVE_REDIRECT_SCHEMES since) is refused too, and the page says why.
    try:
        check_registrable(requested, registry.native_schemes)
    except UnacceptableRedirectUri as exc:
        logger.info("authorization refused for %s: redirect_uri: %s", client.client_id[:200], exc)
        description = f"The redirect_uri is not acceptable: {exc}."
        raise RequestNotTrusted("Invalid redirect URI", description) from None
    if is_private_use_redirect(requested, registry.native_schemes) and client.application_type != "native":
        raise RequestNotTrusted(  # private-use schemes are for native apps only (RFC 8252 section 7.1)
            "Invalid redirect URI",
            f"The {requested.partition(':')[0]}: redirect_uri is only for native apps (application_type "
            "native), and this application registered as a web application.",
        )
    registered = find_match(requested, client.redirect_uris)
    if registered is None:
        raise RequestNotTrusted(
            "Invalid redirect URI", "The redirect_uri is not one this application registered."
        )
    return VerifiedRedirect(client, requested, registered, redirect_uri_in_request=True)


def check_request(params: AuthorizationParameters, client: Client, settings: Settings) -> CheckedRequest:
    repeated = params.repeated()
    if repeated:
        raise AuthorizationError("invalid_request", f"parameter repeated: {repeated[0]}")

    response_type = params.one("response_type")
    if response_type is None:
        raise AuthorizationError("invalid_request", "response_type is required")
    if response_type != "code":
        raise AuthorizationError("unsupported_response_type", "only response_type code is supported")
    if "code" not in client.response_types or "authorization_code" not in client.grant_types:
        raise AuthorizationError("unauthorized_client", "this client may not use the authorization code flow")

    return CheckedRequest(
        code_challenge=_code_challenge(params),
        scopes=_scopes(params, client),
        resource=_resource(params, settings),
        dpop_jkt=_dpop_jkt(params),
    )


def _code_challenge(params: AuthorizationParameters) -> str:
    challenge = params.one("code_challenge")
    if challenge is None:
        raise AuthorizationError("invalid_request", "code_challenge is required (PKCE with S256)")
    if params.one("code_challenge_method") != "S256":
        raise AuthorizationError(
            "invalid_request", "code_challenge_method must be S256 (plain is not accepted)"
        )
    if not PKCE_CHALLENGE.match(challenge):
        raise AuthorizationError("invalid_request", "code_challenge must be 43 to 128 unreserved characters")
    return challenge


def _dpop_jkt(params: AuthorizationParameters) -> str | None:
    """RFC 9449 section 10: the thumbprint of the DPoP key the code is to be bound to."""
    jkt = params.one("dpop_jkt")
    if jkt is not None and not JKT.fullmatch(jkt):
        raise AuthorizationError("invalid_request", "dpop_jkt must be a JWK SHA-256 thumbprint (RFC 7638)")
    return jkt


def _resource(params: AuthorizationParameters, settings: Settings) -> str:
    requested = list(dict.fromkeys(params.every("resource")))
    if not requested:
        return default_resource(settings)
    if len(requested) > 1:
        raise AuthorizationError("invalid_target", "request one resource per authorization")
    resource = requested[0]
    if not is_well_formed_resource(resource):
        raise AuthorizationError("invalid_target", "resource must be an absolute URI without a fragment")
    if not is_served(settings, resource):
        raise AuthorizationError("invalid_target", "this server does not issue tokens for that resource")
    return resource


def scopes_client_may_request(client: Client) -> frozenset[str]:
    """What a client may ask for: a configured client's `scope` is the operator's limit.

    A registered or CIMD client's `scope` is only its first wish: MCP clients register with the
    scope of the first challenge and later step up (403 insufficient_scope, then a new
    authorization for more) with the same registration, so holding them to it would break
    step-up. For them, the user's consent is the limit.
    """
    if client.scope and client.source == "preregistered":
        return scope_model.CATALOGUE.expand(scope_model.parse(client.scope))
    return frozenset(scope_model.CATALOGUE.names)


def _scopes(params: AuthorizationParameters, client: Client) -> tuple[str, ...]:
    allowed = scopes_client_may_request(client)
    requested = scope_model.parse(params.one("scope"))
    if not requested:
        baseline = tuple(scope for scope in scope_model.CATALOGUE.baseline if scope in allowed)
        if not baseline:
            raise AuthorizationError("invalid_scope", "this client must name the scopes it needs")
        return baseline
    unknown = scope_model.CATALOGUE.unknown(requested)
    if unknown:
        raise AuthorizationError("invalid_scope", f"unknown scope: {unknown[0][:100]}")
    outside = [scope for scope in requested if scope not in allowed]
    if outside:
        raise AuthorizationError("invalid_scope", f"this client may not ask for: {outside[0]}")
    return requested


def error_for_client(
    fc: FrontChannel,
    target: VerifiedRedirect,
    error: AuthorizationError,
    state: str | None,
    params: AuthorizationParameters,
    *,
    after_post: bool,
) -> Response:
    """Redirect the error to the client, or show it with a link when the URI is not trusted."""
    url = client_redirect_url(
        fc.settings,
        target.redirect_uri,
        {"error": error.error, "error_description": error.description, "state": state},
    )
    if redirects_automatically(target.client, target.redirect_uri):
        return redirect(url, after_post=after_post)
    return error_page(
        "The application's request is invalid",
        f"{error.error}: {error.description}",
        details=params.details(),
        continue_url=url,
        continue_host=display_host(target.redirect_uri),
    )


def authorize_endpoint(fc: FrontChannel) -> Page:
    @html_endpoint
    async def authorize(request: Request) -> Response:
        await fc.limiter.check("authorize", request)
        after_post = request.method == "POST"
        pairs = await read_form_pairs(request) if after_post else parse_form(request.scope["query_string"])
        params = AuthorizationParameters(pairs)
        oversized = params.oversized()
        if oversized is not None:
            too_long = f"The parameter {oversized[:40]} is longer than {MAX_PARAMETER_LENGTH} characters."
            return error_page("Invalid request", too_long)
        try:
            target = await identify_client(params, fc.registry, client_ip(request))
        except RequestNotTrusted as exc:
            return error_page(exc.title, exc.description, details=params.details())

        state = None if params.is_repeated("state") else params.one("state")
        try:
            checked = check_request(params, target.client, fc.settings)
        except AuthorizationError as exc:
            return error_for_client(fc, target, exc, state, params, after_post=after_post)

        session, is_new_session = await fc.sessions.current_or_new(request)
        authorization = AuthorizationRequest(
            client_id=target.client.client_id,
            redirect_uri=target.redirect_uri,
            registered_redirect_uri=target.registered_redirect_uri,
            redirect_uri_in_request=target.redirect_uri_in_request,
            state=state,
            code_challenge=checked.code_challenge,
            scopes=checked.scopes,
            resource=checked.resource,
            dpop_jkt=checked.dpop_jkt,
        )
        request_id, pending = await fc.pending.create(authorization, session)
        response = await next_step(fc, request_id, pending, session, after_post=after_post)
        if is_new_session:
            fc.sessions.set_cookie(response, session)
        return response

    return authorize
