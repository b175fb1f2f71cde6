"""CORS for the endpoints browsers may call cross-origin: metadata and registration.

These answer without cookies or ambient credentials, so any origin may read them (OAuth 2.1
section 3.2 asks for CORS on such endpoints so browser-based MCP clients can discover and
register). The authorization endpoint never gets these headers: it is a page to navigate to,
not an API to script (section 3.1).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from starlette.requests import Request
from starlette.responses import Response

ALLOWED_REQUEST_HEADERS = "Content-Type, MCP-Protocol-Version"


def cors_headers(methods: Sequence[str]) -> dict[str, str]:
    return {
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Allow-Methods": ", ".join((*methods, "OPTIONS")),
        "Access-Control-Allow-Headers": ALLOWED_REQUEST_HEADERS,
        "Access-Control-Max-Age": "86400",
    }


def preflight(methods: Sequence[str]) -> Callable[[Request], Awaitable[Response]]:
    """An OPTIONS endpoint answering CORS preflights for `methods`."""

    async def options(_: Request) -> Response:
        return Response(status_code=204, headers=cors_headers(methods))

    return options


def with_cors(
    handler: Callable[[Request], Awaitable[Response]], methods: Sequence[str]
) -> Callable[[Request], Awaitable[Response]]:
    """Adds the CORS headers to every answer of `handler`, errors included."""

    async def endpoint(request: Request) -> Response:
        response = await handler(request)
        response.headers.update(cors_headers(methods))
        return response

    endpoint.__name__ = handler.__name__
    return endpoint
