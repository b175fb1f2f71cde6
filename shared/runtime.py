"""Process-level tuning every server entry point applies once, after building its app.

`freeze_startup_heap()`: the objects that exist once the app is built (the app, the MCP SDK,
pydantic's validators and schemas, the templates...) live as long as the process. Left in the
garbage collector's generations, every full collection walks all of them again: under load that
was one ~40 ms pause every few seconds and about 15% of the CPU of a tools/call benchmark
(docs/performance.md). `gc.freeze()` moves them to the permanent generation, which is never
scanned; everything allocated afterwards, per request, is collected exactly as before.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    gc.collect()  # what is garbage now is freed, not frozen
    gc.freeze()
