"""How every server process runs: `serve()` builds the app and hands it to uvicorn, with the
process-level tuning applied once, after the app is built; with WEB_CONCURRENCY (`--workers`)
above 1, uvicorn's supervisor runs that many worker processes on the one port.

`freeze_startup_heap()`: the objects that exist once the app is built (the app, the MCP SDK,
pydantic's validators and schemas, the templates...) live as long as the process. Left in the
garbage collector's generations, every full collection walks all of them again: under load that
was one ~40 ms pause every few seconds and about 15% of the CPU of a tools/call benchmark
(docs/performance.md). `gc.freeze()` moves them to the permanent generation, which is never
scanned; everything allocated afterwards, per request, is collected exactly as before.

Several workers (docs/operations.md, "Several workers"): the supervisor process builds the app
once, which runs every check (`shared/startup.py`: development defaults outside development,
state that several workers would split) and finds every bad setting, so a refusal is one message,
said once; it logs the banner once; then uvicorn spawns the workers, fresh interpreters that
build their own app with `worker_app` from the environment the supervisor passes on (its command
line flags included), and restarts any that dies. The supervisor serves nothing itself.
"""

from __future__ import annotations

import argparse
import errno
import gc
import logging
import os
import secrets
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable, Mapping
from typing import TypeVar

import uvicorn
from starlette.types import ASGIApp

from shared import startup
from shared.http_protocol import HeaderDeadlineProtocol
from shared.logs import configure_logging
from shared.metrics import MULTIPROCESS_DIRECTORY
from shared.settings import Settings, SettingsError, load_settings

logger = logging.getLogger("startup")

# uvicorn's exit code for a worker that failed before it served: its supervisor then stops
# instead of restarting it forever (the app would fail the same way every time).
WORKER_STARTUP_FAILURE = 3


def add_server_flags(parser: argparse.ArgumentParser, port_setting: str) -> None:
    """The flags both entry points take; each overrides one setting (`flag_overrides`)."""
    parser.add_argument("--port", type=int, help=f"overrides {port_setting.upper()}")
    parser.add_argument("--host", help="overrides HOST")
    parser.add_argument(
        "--forwarded-allow-ips", metavar="IPS", help="overrides FORWARDED_ALLOW_IPS (comma-separated)"
    )
    parser.add_argument(
        "--workers", type=int, metavar="N", help="overrides WEB_CONCURRENCY (worker processes on the port)"
    )


def flag_overrides(args: argparse.Namespace, port_setting: str) -> dict[str, object]:
    """The settings `add_server_flags`'s flags override (for `load_settings`, and for `serve`,
    which passes them on to the workers)."""
    given = {
        port_setting: args.port,
        "host": args.host,
        "forwarded_allow_ips": args.forwarded_allow_ips,
        "web_concurrency": args.workers,
    }
    return {name: value for name, value in given.items() if value is not None}


def freeze_startup_heap() -> None:
    gc.collect()  # what is garbage now is freed, not frozen
    gc.freeze()


def serve(
    build_app: Callable[[bool], ASGIApp],
    *,
    settings: Settings,
    role: Callable[[Settings], startup.Role],
    port_setting: str,
    worker_factory: str,
    overrides: Mapping[str, object] | None = None,
) -> None:
    """Build the app, then serve it with uvicorn the same way for every server process.

    `build_app(announce)` builds the app (logging the banner when it starts if `announce`);
    `role` says what the process serves (for the banner the supervisor logs); `port_setting`
    names the setting of its port ("mcp_port", "auth_port");
    `worker_factory` is the import path of the function each worker builds it with
    ("package.module:function"); `overrides` are the command line's settings, passed on to the
    workers through their environment.

    A bad AUTH_USERS / AUTH_CLIENTS / API_KEYS entry is only found when the app is built: it
    stops start-up with one readable line, like a bad setting does, never a traceback. So does a
    port another process holds, before the banner says where to connect.
    """
    port: int = getattr(settings, port_setting)
    # Unsafe settings first: HOST=<a public address> must read "refusing to start", not "cannot listen".
    workers = settings.web_concurrency
    try:
        startup.check_deployment(settings, role(settings))
        check_port_free(settings.host, port, port_setting)
        app = build_app(workers == 1)
    except ValueError as exc:
        raise SystemExit(f"Invalid configuration:\n  {exc}") from None
    if workers == 1:
        freeze_startup_heap()
        _run(app, settings, port)
        return
    del app  # it was built to check the configuration; each worker builds its own
    serves = role(settings)
    startup.log_banner(settings, serves, defaults=startup.check_deployment(settings, serves))
    _pass_on(overrides or {})
    if serves.serves_mcp and not settings.request_state_keys:
        # 2026-07-28 requestState sealed by one worker must open in the others: one key for
        # these workers, living as long as the supervisor (other instances need REQUEST_STATE_KEYS).
        os.environ["REQUEST_STATE_KEYS"] = secrets.token_urlsafe(32)
        logger.info(
            "  requestState: sealed with a key generated for these workers (REQUEST_STATE_KEYS unset)"
        )
    metrics_directory = None
    if settings.metrics_enabled:  # each worker's metrics in files /metrics sums (shared/metrics.py)
        metrics_directory = tempfile.mkdtemp(prefix="mcpref-metrics-")
        os.environ[MULTIPROCESS_DIRECTORY] = metrics_directory
    try:
        _run(worker_factory, settings, port, workers=workers)
    finally:
        if metrics_directory is not None:
            shutil.rmtree(metrics_directory, ignore_errors=True)


def check_port_free(host: str, port: int, port_setting: str) -> None:
    """Stop with one line naming the setting when HOST:port cannot be listened on (another server
    holds it, often one already started with `make dev-*`). uvicorn would find out only after the
    app started and the banner said "ready"; this binds the way it will (SO_REUSEADDR) and lets go."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (OSError, UnicodeError) as exc:
        raise SystemExit(
            f"Invalid configuration:\n  HOST {host!r}: not an address to listen on ({exc})"
        ) from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            setting = port_setting.upper()
            fix = {
                errno.EADDRINUSE: "another process holds that port (a server already running?); stop it, "
                f"or set {setting} (or --port) to a free port",
                errno.EACCES: f"ports below 1024 need privileges; set {setting} (or --port) to 1024 or above "
                "and let the reverse proxy take 443",
            }.get(exc.errno or 0, f"check HOST ({host!r} must be an address of this machine) and {setting}")
            raise SystemExit(f"Cannot listen on {host}:{port} ({exc.strerror}): {fix}") from None


AppT = TypeVar("AppT")


def worker_app(build: Callable[[Settings], AppT]) -> AppT:
    """What one worker process serves: its settings from the environment the supervisor set up,
    its logging configured (a worker is a fresh interpreter), the app built without a banner.
    A configuration that fails here anyway stops the supervisor rather than a restart loop."""
    settings = load_settings()
    configure_logging(settings)
    try:
        app = build(settings)
    except (SettingsError, ValueError) as exc:
        logging.getLogger("startup").error("%s", exc)
        sys.exit(WORKER_STARTUP_FAILURE)
    freeze_startup_heap()
    return app


def _run(app: ASGIApp | str, settings: Settings, port: int, *, workers: int = 1) -> None:
    """uvicorn with the same options for one process and for a worker factory (an import path)."""
    uvicorn.run(
        app,
        host=settings.host,
        port=port,
        workers=workers,  # explicit: uvicorn would otherwise read WEB_CONCURRENCY itself
        factory=workers > 1,
        log_level=settings.log_level.lower(),
        log_config=None,  # uvicorn's loggers propagate to the one handler configure_logging installed
        proxy_headers=False,
        http=HeaderDeadlineProtocol,  # httptools with a deadline for request headers (slowloris)
        # asyncio, not uvloop even when installed: with the SDK's per-request task groups uvloop was
        # slower here and its p99 at 64 connections 6x worse (docs/performance.md).
        loop="asyncio",
    )


def _pass_on(overrides: Mapping[str, object]) -> None:
    """Command-line settings reach the workers as environment variables (what they read)."""
    for name, value in overrides.items():
        text = ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
        os.environ[name.upper()] = text
