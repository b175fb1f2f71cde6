"""`python -m downstream`: the demo downstream API on the port of DOWNSTREAM_API_URL (HOST).

Settings as for the servers (the environment, then `.env`): DOWNSTREAM_API_URL, and the
authorization server to trust exactly as the MCP server finds it (AUTH_MODE, MCP_PUBLIC_URL,
AUTH_ISSUER_URL, AUTH_SERVER_URL).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.applications import Starlette

from downstream.app import create_downstream_app
from shared import startup
from shared.logs import configure_logging
from shared.runtime import serve, worker_app
from shared.settings import Settings, load_settings


def downstream_role(_: Settings) -> startup.Role:
    """What `python -m downstream` serves, for the banner the supervisor of several workers logs."""
    return startup.Role("demo downstream API", serves_mcp=False)


def create_downstream_worker_app() -> Starlette:
    """One worker of `python -m downstream` with WEB_CONCURRENCY above 1."""
    return worker_app(create_downstream_app)


def main() -> None:
    settings = load_settings()
    configure_logging(settings)
    if settings.downstream_api_url is None:
        raise SystemExit("Invalid configuration:\n  DOWNSTREAM_API_URL: set it to the URL this API serves at")
    parts = urlsplit(settings.downstream_api_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    serve(
        lambda _announce: create_downstream_app(settings),
        settings=settings,
        role=downstream_role,
        port=port,
        worker_factory="downstream.__main__:create_downstream_worker_app",
    )


if __name__ == "__main__":
    main()
