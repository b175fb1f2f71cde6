"""`python -m mcp_server [--transport http|stdio]`: run the MCP server.

HTTP serves /mcp (both protocol revisions), /sse and, in internal mode, the authorization
server's routes on MCP_PORT. stdio serves one client on standard input/output, for local
development and desktop clients that launch the server themselves.
"""

from __future__ import annotations

import argparse
import sys

import anyio
import uvicorn

from shared.logs import configure_logging
from shared.runtime import freeze_startup_heap
from shared.settings import load_settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mcp_server", description=__doc__)
    parser.add_argument("--transport", choices=["http", "stdio"], default="http")
    parser.add_argument("--port", type=int, help="overrides MCP_PORT")
    parser.add_argument("--host", help="overrides HOST")
    args = parser.parse_args(argv)

    overrides: dict[str, object] = {}
    if args.port is not None:
        overrides["mcp_port"] = args.port
    if args.host is not None:
        overrides["host"] = args.host
    settings = load_settings(**overrides)
    configure_logging(settings)

    if args.transport == "stdio":
        from mcp_server.server import build_mcp_server
        from shared.storage.factory import open_store

        server = build_mcp_server(settings, open_store(settings))
        anyio.run(server.run_stdio_async)
        return

    from mcp_server.app import create_app

    try:
        app = create_app(settings)
    except ValueError as exc:  # AUTH_USERS / AUTH_CLIENTS / API_KEYS entries are checked here
        raise SystemExit(f"Invalid configuration:\n  {exc}") from None
    freeze_startup_heap()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.mcp_port,
        log_level=settings.log_level.lower(),
        log_config=None,  # uvicorn's loggers propagate to the one handler configure_logging installed
        proxy_headers=False,
        # asyncio, not uvloop even when installed: with the SDK's per-request task groups uvloop was
        # slower here and its p99 at 64 connections 6x worse (docs/performance.md).
        loop="asyncio",
    )


if __name__ == "__main__":
    main(sys.argv[1:])
