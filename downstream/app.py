"""The demo downstream API: one resource, `GET /v1/profile`, for exchanged tokens only.

A request must carry `Authorization: Bearer <token>` where the token is an RFC 9068 JWT from the
authorization server this deployment trusts (its keys by discovery, like the MCP server's JWT
check: `shared.validators.jwt`), and:

* `aud` is this API (DOWNSTREAM_API_URL): a token for the MCP server is refused here, so
  forwarding the caller's MCP token would not work even by mistake;
* `act.sub` is the MCP server (its resource URI, MCP_PUBLIC_URL + /mcp): the token was exchanged
  by the MCP server acting for the user, not handed to some other party;
* `scope` has `profile:read`, else 403 `insufficient_scope`.

The answer says who the call is for and who made it. Checked locally, a revoked exchanged token
stays usable until its `exp` (TOKEN_EXCHANGE_TTL, five minutes by default); an API that cannot
accept that introspects instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shared.scopes import PROFILE_READ
from shared.settings import Settings
from shared.validation import TokenRejected, TokenValidator, ValidatorUnavailable
from shared.validators.discovery import ProviderMetadata
from shared.validators.jwt import JwtValidator

REALM = "downstream-demo"


def create_downstream_app(settings: Settings, validator: TokenValidator | None = None) -> Starlette:
    """The API for `settings` (DOWNSTREAM_API_URL is its audience); `validator` replaces the JWT
    check against the authorization server's published keys (tests)."""
    if settings.downstream_api_url is None:
        raise ValueError("DOWNSTREAM_API_URL is not set: it is the demo API's URL and audience")
    audience = settings.downstream_api_url
    actor = settings.mcp_resource_url
    checker = validator or JwtValidator(
        issuer=settings.issuer,
        resource=audience,
        metadata=ProviderMetadata.from_settings(settings),
        timeout=settings.introspection_timeout,
    )

    async def profile(request: Request) -> Response:
        token = _bearer(request)
        if token is None:
            return _challenge(401, "invalid_request", "send the exchanged token as a Bearer token")
        try:
            principal = await checker.validate(token)
        except TokenRejected as rejected:
            return _challenge(401, "invalid_token", f"the token is not acceptable here ({rejected.reason})")
        except ValidatorUnavailable as unavailable:
            return JSONResponse(
                {"error": "temporarily_unavailable"},
                status_code=503,
                headers={"Retry-After": str(unavailable.retry_after)},
            )
        acting = _actor(principal.claims)
        if acting != actor:
            return _challenge(401, "invalid_token", "only tokens the MCP server exchanged are accepted here")
        if PROFILE_READ not in principal.scopes:
            return _challenge(
                403, "insufficient_scope", f"the token needs {PROFILE_READ}", scope=PROFILE_READ
            )
        return JSONResponse(
            {
                "subject": principal.subject,
                "actor": acting,
                "client_id": principal.client_id,
                "scope": " ".join(sorted(principal.scopes)),
                "audience": list(principal.audience),
            }
        )

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            aclose = getattr(checker, "aclose", None)
            if aclose is not None:
                await aclose()

    return Starlette(
        routes=[Route("/v1/profile", profile, methods=["GET"]), Route("/healthz", healthz, methods=["GET"])],
        lifespan=lifespan,
    )


def _bearer(request: Request) -> str | None:
    values = request.headers.getlist("authorization")
    if len(values) != 1:
        return None
    scheme, _, token = values[0].partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _actor(claims: Mapping[str, Any]) -> str | None:
    act = claims.get("act")
    sub = act.get("sub") if isinstance(act, dict) else None
    return sub if isinstance(sub, str) else None


def _challenge(status: int, error: str, description: str, *, scope: str | None = None) -> Response:
    params = [f'realm="{REALM}"', f'error="{error}"', f'error_description="{description}"']
    if scope is not None:
        params.append(f'scope="{scope}"')
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={"WWW-Authenticate": "Bearer " + ", ".join(params)},
    )
