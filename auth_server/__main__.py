"""`python -m auth_server`: the authorization server on its own (AUTH_MODE=external).

Serves on HOST:AUTH_PORT, in WEB_CONCURRENCY (--workers) processes; the MCP server
(`python -m mcp_server`) validates its tokens by introspection. `make dev-external` starts both.
The MCP resource it issues tokens for is MCP_PUBLIC_URL + /mcp (unset: http://HOST:MCP_PORT/mcp),
so set MCP_PUBLIC_URL (or the same MCP_PORT) when the MCP server runs elsewhere; the banner says
which resource it serves.

Settings: the environment, then `.env` in the working directory, then the defaults; a flag
below overrides its setting.

`python -m auth_server admin ...` is the admin CLI instead (`auth_server/admin/cli.py`), for either
mode.
"""

from __future__ import annotations

import argparse
import sys

from shared import startup
from shared.logs import configure_logging
from shared.runtime import add_server_flags, flag_overrides, serve
from shared.settings import load_settings


def main(argv: list[str] | None = None) -> None:
    if argv and argv[0] == "admin":
        from auth_server.admin.cli import main as admin

        sys.exit(admin(argv[1:]))
    parser = argparse.ArgumentParser(prog="python -m auth_server", description=__doc__)
    add_server_flags(parser, "auth_port")
    overrides = flag_overrides(parser.parse_args(argv), "auth_port")
    settings = load_settings(**overrides)
    configure_logging(settings)
    startup.warn_unknown_settings()

    from auth_server.app import authorization_server_role, create_auth_app

    serve(
        lambda announce: create_auth_app(settings, announce=announce),
        settings=settings,
        role=authorization_server_role,
        port_setting="auth_port",
        worker_factory="auth_server.app:create_auth_worker_app",
        overrides=overrides,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
