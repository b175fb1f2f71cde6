"""Log notifications to the client, honouring the level the client asked for.

- 2025-11-25 and earlier: the client sets a session-wide minimum with `logging/setLevel`
  (served here; MCPServer has no decorator for it). The SDK sends every level on these
  revisions, so filtering is this module's job: `log()` drops entries below the session's level.
- 2026-07-28: `logging/setLevel` is gone; each request opts in with `_meta` `logLevel` and the SDK
  drops everything else itself (nothing at all when the request did not opt in).

Levels are kept per `Mcp-Session-Id` (stdio has one client per process), at most `MAX_SESSIONS`
of them, least recently set dropped first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp_types import EmptyResult, LoggingLevel, SetLevelRequestParams

from mcp_server.sdk_access import lowlevel_server
from shared.bounded_cache import BoundedCache

LEVELS: Final[tuple[LoggingLevel, ...]] = (
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
)
MAX_SESSIONS: Final = 10_000


def _session_key(headers: Mapping[str, str] | None) -> str:
    return (headers or {}).get("mcp-session-id") or "-"


class SessionLogLevels:
    """The minimum log level each session asked for with `logging/setLevel` (bounded)."""

    def __init__(self, max_sessions: int = MAX_SESSIONS) -> None:
        self._levels: BoundedCache[str, LoggingLevel] = BoundedCache(max_sessions)

    def set(self, headers: Mapping[str, str] | None, level: LoggingLevel) -> None:
        self._levels.put(_session_key(headers), level)

    def allows(self, headers: Mapping[str, str] | None, level: LoggingLevel) -> bool:
        """True unless the session set a minimum above `level` (no setLevel: everything goes)."""
        minimum = self._levels.get(_session_key(headers))
        return minimum is None or LEVELS.index(level) >= LEVELS.index(minimum)

    async def log(self, ctx: Context[Any, Any], level: LoggingLevel, message: str) -> None:
        """Send a `notifications/message` on this request's stream, if the client wants that level."""
        if self.allows(ctx.headers, level):
            await ctx.log(level, message)


def register(server: MCPServer) -> SessionLogLevels:
    """Serve `logging/setLevel`; returns the levels it records, for the tools that log."""
    levels = SessionLogLevels()

    async def set_level(ctx: ServerRequestContext[Any, Any], params: SetLevelRequestParams) -> EmptyResult:
        levels.set(getattr(ctx.request, "headers", None), params.level)
        return EmptyResult()

    lowlevel_server(server).add_request_handler("logging/setLevel", SetLevelRequestParams, set_level)
    return levels
