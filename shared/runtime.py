"""How every server process runs: `serve()` builds the app and hands it to uvicorn, with the
process-level tuning applied once, after the app is built.

`freeze_startup_heap()`: the objects that exist once the app is built (the app, the MCP SDK,
pydantic's validators and schemas, the templates...) live as long as the process. Left in the
garbage collector's generations, every full collection walks all of them again: under load that
was one ~40 ms pause every few seconds and about 15% of the CPU of a tools/call benchmark
(docs/performance.md). `gc.freeze()` moves them to the permanent generation, which is never
scanned; everything allocated afterwards, per request, is collected exactly as before.
"""

from __future__ import annotations

import gc
from collections.abc import Callable

import uvicorn
from starlette.types import ASGIApp

from shared.settings import Settings


def freeze_startup_heap() -> None:
    gc.collect()  # what is garbage now is freed, not frozen
    gc.freeze()


def serve(build_app: Callable[[], ASGIApp], *, settings: Settings, port: int) -> None:
    """Build the app, then serve it with uvicorn the same way for every server process.

    A bad AUTH_USERS / AUTH_CLIENTS / API_KEYS entry is only found when the app is built: it
    stops start-up with one readable line, like a bad setting does, never a traceback.
    """
    try:
        app = build_app()
    except ValueError as exc:
        raise SystemExit(f"Invalid configuration:\n  {exc}") from None
    freeze_startup_heap()
    uvicorn.run(
        app,
        host=settings.host,
        port=port,
        log_level=settings.log_level.lower(),
        log_config=None,  # uvicorn's loggers propagate to the one handler configure_logging installed
        proxy_headers=False,
        # asyncio, not uvloop even when installed: with the SDK's per-request task groups uvloop was
        # slower here and its p99 at 64 connections 6x worse (docs/performance.md).
        loop="asyncio",
    )
