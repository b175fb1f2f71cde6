"""`python -m scripts.bench.serve {mcp,bare} --port N`: one server process for the benchmark.

Every server the benchmark measures is started by this launcher, so the MCP app and the bare
Starlette ceiling run under exactly the same uvicorn settings (`UVICORN_OPTIONS`): one worker,
the asyncio event loop (as `python -m mcp_server` uses), uvicorn's "auto" HTTP parser (httptools,
a project dependency), no access log, and the start-up heap frozen out of the garbage
collector's view (`shared.runtime`). The MCP app is built by `mcp_server.app.create_app` from the
environment, exactly as `python -m mcp_server` builds it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from shared.runtime import freeze_startup_heap

UVICORN_OPTIONS: dict[str, Any] = {
    "host": "127.0.0.1",
    "workers": 1,
    "loop": "asyncio",
    "http": "auto",
    "access_log": False,
    "log_level": "warning",
    "proxy_headers": False,
}

# What the ceiling answers: about the size of a tools/call result for `echo`.
BARE_RESULT = {"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": "hello"}]}}


def bare_app() -> ASGIApp:
    """The ceiling: a Starlette route that reads the posted JSON and answers small JSON."""

    async def endpoint(request: Request) -> Response:
        await request.body()
        return JSONResponse(BARE_RESULT)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[Route("/mcp", endpoint, methods=["POST"]), Route("/healthz", healthz, methods=["GET"])]
    )


def mcp_app(tenant_lookup_ms: float = 0) -> ASGIApp:
    """The app as `python -m mcp_server` builds it; with `tenant_lookup_ms`, its tenant lookup
    first waits that long, as a lookup in a customer database would (30-60 ms)."""
    from mcp_server.app import create_app
    from mcp_server.tenants import Tenant, look_up_tenant
    from shared.settings import load_settings
    from shared.validation import Principal

    if not tenant_lookup_ms:
        return create_app(load_settings())

    async def slow_lookup(principal: Principal) -> Tenant:
        await asyncio.sleep(tenant_lookup_ms / 1000)
        return await look_up_tenant(principal)

    return create_app(load_settings(), tenant_lookup=slow_lookup)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench.serve", description=__doc__)
    parser.add_argument("app", choices=["mcp", "bare"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--loop", default=UVICORN_OPTIONS["loop"], help="uvicorn --loop (auto, asyncio, uvloop)"
    )
    parser.add_argument(
        "--http", default=UVICORN_OPTIONS["http"], help="uvicorn --http (auto, h11, httptools)"
    )
    parser.add_argument(
        "--tenant-lookup-ms", type=float, default=0, help="make each tenant lookup take this long (mcp only)"
    )
    args = parser.parse_args(argv)
    app = mcp_app(args.tenant_lookup_ms) if args.app == "mcp" else bare_app()
    freeze_startup_heap()  # as `python -m mcp_server` does, for both apps
    uvicorn.run(app, port=args.port, **{**UVICORN_OPTIONS, "loop": args.loop, "http": args.http})


if __name__ == "__main__":
    main(sys.argv[1:])
