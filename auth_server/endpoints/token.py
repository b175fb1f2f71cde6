"""The token endpoint (OAuth 2.1 section 3.2): POST form in, tokens or an RFC 6749 5.2 error out.

Order of checks: rate limit, form syntax, grant type (so `password` is always
`unsupported_grant_type`), client authentication, whether this client may use the grant
(`unauthorized_client`: `Client.may_use_grant`), the DPoP proof if any (`auth_server.dpop`: the
key the tokens get bound to), then the grant's own rules in `auth_server.grants`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import cast

from starlette.requests import Request
from starlette.responses import Response

from auth_server.clients.authentication import AuthenticatedClient
from auth_server.endpoints.forms import Endpoint, json_response, oauth_endpoint, read_form
from auth_server.errors import OAuthError, quoted
from auth_server.grants import (
    authorization_code,
    client_credentials,
    refresh_token,
    served_grant_types,
    token_exchange,
)
from auth_server.grants.context import GrantContext
from auth_server.grants.jwt_bearer import JwtBearerGrant
from auth_server.params import Form
from auth_server.rate_limit import client_ip
from auth_server.services import BackChannel
from auth_server.tokens import IssuedTokens
from shared.oauth import JWT_BEARER_GRANT, TOKEN_EXCHANGE_GRANT, GrantType

GrantHandler = Callable[[GrantContext, AuthenticatedClient, Form, str], Awaitable[IssuedTokens]]

HANDLERS: dict[GrantType, GrantHandler] = {
    "authorization_code": authorization_code.exchange,
    "refresh_token": refresh_token.exchange,
    "client_credentials": client_credentials.exchange,
}


def grant_handlers(channel: BackChannel) -> dict[GrantType, GrantHandler]:
    """Every grant this deployment serves (`grants.served_grant_types` says which, for the
    metadata too): the three above, plus the enterprise assertion and token exchange when on."""
    available: dict[GrantType, GrantHandler] = {**HANDLERS, TOKEN_EXCHANGE_GRANT: token_exchange.exchange}
    if channel.enterprise_idps is not None:
        available[JWT_BEARER_GRANT] = JwtBearerGrant(channel.enterprise_idps).exchange
    return {name: available[name] for name in served_grant_types(channel.settings)}


def token_endpoint(channel: BackChannel) -> Endpoint:
    context = channel.grant_context
    handlers = grant_handlers(channel)

    @oauth_endpoint
    async def token(request: Request) -> Response:
        ip = client_ip(request)
        await channel.limiter.check_ip("token", ip)
        form = await read_form(request)
        grant_type = form.require("grant_type")
        handler = handlers.get(cast(GrantType, grant_type))
        if handler is None:
            raise OAuthError("unsupported_grant_type", f"grant_type {quoted(grant_type)} is not supported")
        try:
            caller = await channel.clients.authenticate(request.headers, form)
        except OAuthError as exc:
            if exc.error == "invalid_client":
                claimed = form.get("client_id")
                channel.audit.record("client_auth_failed", ip=ip, client_id=claimed, endpoint="token")
            raise
        if not caller.client.may_use_grant(grant_type):
            raise OAuthError("unauthorized_client", f"this client may not use {grant_type}")
        binding = await channel.proofs.binding(request.headers, caller.client)
        issued = await handler(
            context if binding is None else replace(context, dpop=binding), caller, form, ip
        )
        response = json_response(issued.response_body())
        response.headers.update(await channel.proofs.response_headers(binding))
        return response

    return token
