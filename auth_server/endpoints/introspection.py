"""Token introspection (RFC 7662) for resource servers.

Only clients flagged `may_introspect` that authenticate with a secret may ask (the MCP server's
own client in external mode); anyone else gets 401 `invalid_client`, so the endpoint cannot be
used to test stolen or guessed tokens.

Limits, so that introspection cannot be rate-limited away. A resource server introspects for all
of its users from one address, so nothing here counts requests per IP before authentication (at
8e585b0 about 30 active users, or 60 junk tokens, used up the MCP server's 60 per minute and
every uncached token got 503):
* failed client authentications count per client IP (RATE_LIMIT_PER_MINUTE: secret guessing);
  an address that used them up is refused (429) before its credentials are even checked;
* an authenticated resource server counts against its own, generous limit per client_id
  (INTROSPECTION_RATE_LIMIT_PER_MINUTE), on every instance together. What unknown tokens cost is
  bounded where they arrive, at the MCP server (UNKNOWN_TOKENS_PER_MINUTE per client address).

An inactive answer is exactly `{"active": false}`: unknown, expired, revoked, malformed and
"not for a resource you serve" look the same, so the answer leaks nothing. The hint only
chooses which kind is tried first; a wrong hint never hides a token.

`token_type` is `Bearer` for access tokens (the RFC 6749 section 5.1 type, which is what RFC 7662
defines it as), `DPoP` with `cnf.jkt` for DPoP-bound ones (RFC 9449 section 6.2), and
`refresh_token` for refresh tokens, which also carry no `aud`: a resource
server must accept only `Bearer` (the shared introspection validator does), and even one that
forgets finds no audience of its own on a refresh token.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from auth_server.endpoints.forms import Endpoint, json_response, oauth_endpoint, read_form
from auth_server.errors import OAuthError
from auth_server.rate_limit import client_ip
from auth_server.resources import served_resources
from auth_server.services import BackChannel
from auth_server.tokens import AccessTokenRecord, FoundToken

INACTIVE: dict[str, Any] = {"active": False}


def describe(found: FoundToken, resources: tuple[str, ...]) -> dict[str, Any]:
    """The RFC 7662 section 2.2 answer for a live token."""
    record = found.record
    if isinstance(record, AccessTokenRecord):
        if not set(record.aud) & set(resources):
            return INACTIVE
        return {
            "active": True,
            "token_type": "Bearer" if record.cnf_jkt is None else "DPoP",
            "scope": record.scope,
            "client_id": record.client_id,
            "sub": record.sub,
            "aud": record.aud[0] if len(record.aud) == 1 else list(record.aud),
            "iss": record.iss,
            "exp": record.exp,
            "iat": record.iat,
            "jti": record.jti,
            **_confirmation(record.cnf_jkt),
        }
    if record.resource not in resources:
        return INACTIVE
    return {
        "active": True,
        "token_type": "refresh_token",
        "scope": record.scope,
        "client_id": record.client_id,
        "sub": record.sub,
        "iss": record.iss,
        "exp": record.exp,
        "iat": record.iat,
    }


def _confirmation(jkt: str | None) -> dict[str, Any]:
    """RFC 9449 section 6.2: a DPoP-bound token's key, for the resource server to check proofs by."""
    return {} if jkt is None else {"cnf": {"jkt": jkt}}


def introspection_endpoint(channel: BackChannel) -> Endpoint:
    resources = served_resources(channel.settings)

    per_caller = channel.settings.introspection_rate_limit_per_minute

    @oauth_endpoint
    async def introspect(request: Request) -> Response:
        ip = client_ip(request)
        await channel.limiter.refuse_if_failed_too_often("introspect-auth-failed", ip)
        form = await read_form(request)
        try:
            caller = await channel.clients.authenticate(request.headers, form)
            if not caller.proved_identity or not caller.client.may_introspect:
                channel.audit.record("introspection_denied", ip=ip, client_id=caller.client_id)
                raise channel.clients.failure("this client may not introspect tokens")
        except OAuthError as exc:
            if exc.error == "invalid_client":
                await channel.limiter.count_failure("introspect-auth-failed", ip)
            raise
        await channel.limiter.check_client("introspect", caller.client_id, per_caller)
        token = form.require("token")
        found = await channel.tokens.find_any(token, form.get("token_type_hint"))
        return json_response(INACTIVE if found is None else describe(found, resources))

    return introspect
