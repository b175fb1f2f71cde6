"""Liveness and readiness endpoints, the same for both servers.

`/healthz` answers while the process runs (a supervisor restarts it otherwise); `/readyz` answers
503 while storage is unreachable, or while a probe the app adds reports a problem (external mode:
no usable metadata from the trusted authorization server, such as an issuer mismatch), so a load
balancer stops sending traffic that could only fail.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from shared.storage.base import Store

# A readiness check besides storage: None when fine, else a short reason (shown on /readyz).
ReadinessProbe = Callable[[], Awaitable[str | None]]


def health_routes(store: Store, probes: Sequence[ReadinessProbe] = ()) -> list[BaseRoute]:
    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        try:
            ready = await store.ping()
        except Exception:  # any failure to answer means "not ready", never a 500
            ready = False
        if not ready:
            return JSONResponse({"status": "unavailable", "reason": "storage unreachable"}, status_code=503)
        for probe in probes:
            problem = await probe()
            if problem is not None:
                return JSONResponse({"status": "unavailable", "reason": problem}, status_code=503)
        return JSONResponse({"status": "ready"})

    return [Route("/healthz", healthz, methods=["GET"]), Route("/readyz", readyz, methods=["GET"])]
