"""Liveness and readiness endpoints, the same for both servers.

`/healthz` answers while the process runs (a supervisor restarts it otherwise); `/readyz` answers
503 while storage is unreachable, so a load balancer stops sending traffic that could only fail.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from shared.storage.base import Store


def health_routes(store: Store) -> list[BaseRoute]:
    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        try:
            ready = await store.ping()
        except Exception:  # any failure to answer means "not ready", never a 500
            ready = False
        if ready:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "unavailable", "reason": "storage unreachable"}, status_code=503)

    return [Route("/healthz", healthz, methods=["GET"]), Route("/readyz", readyz, methods=["GET"])]
