"""Open CORS: the endpoints any web origin may call, for both servers.

The metadata documents (RFC 8414, RFC 9728), the signing keys, registration and the OAuth back
channel (token, introspection, revocation) take no cookies or other ambient credentials, so a
script on another origin gains nothing a server-side client would not have, and browser-based
MCP clients need them (OAuth 2.1 section 3.2). Starlette's `CORSMiddleware` answers for them: any
origin (`*`, never with credentials), the route's methods, the request headers such a client
sends, preflights cached for a day. Pages a person visits (authorize, login, consent, account)
and the admin API get no CORS at all; the MCP endpoint allows only configured origins
(`mcp_server/protection/origin.py`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, request_response

# Content-Type is CORS-safelisted (Starlette allows it anyway); MCP clients add the protocol version,
# DPoP clients their proof (RFC 9449) and read the token endpoint's DPoP-Nonce.
ALLOWED_REQUEST_HEADERS = ("Content-Type", "MCP-Protocol-Version", "DPoP")
EXPOSED_HEADERS = ("DPoP-Nonce",)
PREFLIGHT_MAX_AGE = 86400

Endpoint = Callable[[Request], Awaitable[Response]]


def open_route(path: str, endpoint: Endpoint, methods: Sequence[str]) -> Route:
    """A route serving `endpoint` for `methods` to any origin, and answering CORS preflights."""
    allowed = (*methods, "OPTIONS")

    async def respond(request: Request) -> Response:
        if request.method == "OPTIONS":  # not a preflight (CORSMiddleware answers those)
            return Response(status_code=204, headers={"Allow": ", ".join(allowed)})
        return await endpoint(request)

    app = CORSMiddleware(
        request_response(respond),
        allow_origins=["*"],
        allow_methods=allowed,
        allow_headers=ALLOWED_REQUEST_HEADERS,
        expose_headers=EXPOSED_HEADERS,
        max_age=PREFLIGHT_MAX_AGE,
    )
    return Route(path, app, methods=allowed, name=getattr(endpoint, "__name__", None))
