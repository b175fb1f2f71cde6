"""`python -m mcp_server [--transport http|stdio]`: run the MCP server.

HTTP serves /mcp (both protocol revisions), /sse and, in internal mode, the authorization
server's routes on MCP_PORT, in WEB_CONCURRENCY (--workers) processes (docs/operations.md).
stdio serves one client on standard input/output, for local development and desktop clients
that launch the server themselves: standard output then carries JSON-RPC and nothing else
(logs, warnings and the banner go to standard error).

Settings: the environment, then `.env` in the working directory, then the defaults; a flag
below overrides its setting.
"""

from __future__ import annotations

import argparse
import sys

import anyio

from shared import startup
from shared.logs import configure_logging
from shared.runtime import add_server_flags, flag_overrides, serve
from shared.settings import load_settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mcp_server", description=__doc__)
    parser.add_argument("--transport", choices=["http", "stdio"], default="http")
    add_server_flags(parser, "mcp_port")
    args = parser.parse_args(argv)
    overrides = flag_overrides(args, "mcp_port")
    settings = load_settings(**overrides)
    configure_logging(settings)
    startup.warn_unknown_settings()

    if args.transport == "stdio":
        from mcp_server.server import build_mcp_server
        from shared.storage.factory import open_store
        from shared.tracing import MCP_SERVICE_NAME, configure_tracing

        try:
            configure_tracing(MCP_SERVICE_NAME)
        except ValueError as exc:  # an OTEL_* value we cannot honour, as `serve` reports it
            raise SystemExit(f"Invalid configuration:\n  {exc}") from None
        server, _, _ = build_mcp_server(settings, open_store(settings))
        role = startup.Role("MCP server", serves_mcp=True)
        startup.log_banner(settings, role, defaults=[], transport="stdio")
        anyio.run(server.run_stdio_async)
        return

    from mcp_server.app import create_app, mcp_server_role

    serve(
        lambda announce: create_app(settings, announce=announce),
        settings=settings,
        role=mcp_server_role,
        port_setting="mcp_port",
        worker_factory="mcp_server.app:create_worker_app",
        overrides=overrides,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
