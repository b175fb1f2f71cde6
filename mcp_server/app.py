"""The composition root: `create_app(settings)` wires storage, validation, auth routes and MCP.

This is the only module that knows both `mcp_server` and `auth_server`: in internal mode it
mounts the authorization server's routes in this process and validates tokens against the
same store; in external mode it validates by RFC 7662 introspection over HTTP.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from mcp_server.server import build_mcp_server
from shared.settings import Settings
from shared.storage.factory import open_store


def create_app(settings: Settings) -> Starlette:
    store = open_store(settings)
    mcp = build_mcp_server(settings, store)
    # The SDK builds its session manager here; we take the manager and mount it ourselves so that
    # our own middleware (origin check, CORS, authentication) wraps /mcp.
    mcp.streamable_http_app(streamable_http_path="/mcp", host=settings.host)
    session_manager = mcp.session_manager

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        try:
            ready = await store.ping()
        except Exception:
            ready = False
        if ready:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "unavailable", "reason": "storage unreachable"}, status_code=503)

    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/mcp", StreamableHTTPASGIApp(session_manager)),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with session_manager.run():
            try:
                yield
            finally:
                await store.close()

    return Starlette(routes=routes, lifespan=lifespan)
