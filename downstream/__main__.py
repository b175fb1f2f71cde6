"""`python -m downstream`: the demo downstream API on the port of DOWNSTREAM_API_URL (HOST).

Settings as for the servers (the environment, then `.env`): DOWNSTREAM_API_URL, and the
authorization server to trust exactly as the MCP server finds it (AUTH_MODE, MCP_PUBLIC_URL,
AUTH_ISSUER_URL, AUTH_SERVER_URL). One process: it is a demo, so WEB_CONCURRENCY is not read.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import uvicorn

from downstream.app import create_downstream_app
from shared.logs import configure_logging
from shared.runtime import check_port_free
from shared.settings import load_settings


def main() -> None:
    settings = load_settings()
    configure_logging(settings)
    if settings.downstream_api_url is None:
        raise SystemExit("Invalid configuration:\n  DOWNSTREAM_API_URL: set it to the URL this API serves at")
    parts = urlsplit(settings.downstream_api_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    check_port_free(settings.host, port, "downstream_api_url")
    uvicorn.run(
        create_downstream_app(settings),
        host=settings.host,
        port=port,
        log_level=settings.log_level.lower(),
        log_config=None,  # uvicorn's loggers propagate to the one handler configure_logging installed
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
