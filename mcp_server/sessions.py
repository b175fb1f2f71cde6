"""2025-11-25 sessions: the SDK's session manager with a quota per principal besides its global cap.

A stateful session (MCP_SESSION_MODE=stateful, 2025-11-25 clients) is a transport, a server task
and an event buffer in this process, kept until the client deletes it or it idles out (the SDK's
30 minutes). The SDK refuses new sessions with 503 once MCP_MAX_SESSIONS are open, and that cap
alone let one principal opening sessions in a loop hold every one of them: everyone else got 503
for half an hour. So each principal also holds at most MCP_MAX_SESSIONS_PER_PRINCIPAL sessions;
one more is refused with 429 (a JSON-RPC error body, Retry-After), while the principal's existing
sessions, and everyone else's, carry on.

"Principal" here is the user: the token's issuer and subject, whichever client presents it, so
registering more clients buys no more sessions. Without authentication (AUTH_MODE=none, loopback
only) there is no principal and only the global cap applies. Sessions of the deprecated HTTP+SSE
transport are not counted here (they last only as long as their GET stream).

The quota is decided where the SDK admits a session (`_admit_session`, under its creation lock,
so concurrent initializes cannot overshoot) and forgotten where it discards one
(`_discard_session`: client DELETE, idle timeout, crash, or an initialize that failed).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthorizationContext
from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import Receive, Scope, Send

from mcp_server.event_store import InMemoryEventStore
from mcp_server.protection._asgi import CannedResponse, jsonrpc_error
from shared.settings import Settings

logger = logging.getLogger(__name__)

SSE_RETRY_INTERVAL_MS = 1000  # reconnection delay suggested to clients after we close an SSE stream
QUOTA_RETRY_AFTER = 60  # seconds: sessions end by DELETE or after the SDK's idle timeout

PrincipalKey = tuple[str | None, str | None]  # (issuer, subject)


class SessionQuotaReached(Exception):
    """The principal already holds its quota of sessions (raised inside the SDK, answered by
    `SessionsEndpoint` before anything was sent)."""


class PrincipalQuotaSessionManager(StreamableHTTPSessionManager):
    """The SDK's StreamableHTTPSessionManager, admitting at most `per_principal` sessions each."""

    def __init__(self, *args: Any, per_principal: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.per_principal = per_principal
        self._held: Counter[PrincipalKey] = Counter()
        self._holder: dict[str, PrincipalKey] = {}

    def held_by(self, issuer: str | None, subject: str | None) -> int:
        """How many open sessions the principal holds (metrics, tests)."""
        return self._held[(issuer, subject)]

    def _admit_session(self, requestor: AuthorizationContext | None) -> StreamableHTTPServerTransport | None:
        key = None if requestor is None else (requestor["issuer"], requestor["subject"])
        if key is not None and self._held[key] >= self.per_principal:
            logger.warning(
                "refusing a new session for %s: it holds %d (MCP_MAX_SESSIONS_PER_PRINCIPAL)",
                (key[1] or "")[:100],
                self._held[key],
            )
            raise SessionQuotaReached
        transport = super()._admit_session(requestor)
        if transport is not None and key is not None and transport.mcp_session_id is not None:
            self._held[key] += 1
            self._holder[transport.mcp_session_id] = key
        return transport

    async def _discard_session(self, session_id: str, transport: StreamableHTTPServerTransport) -> None:
        key = self._holder.pop(session_id, None)  # before any await: counted down exactly once
        if key is not None:
            self._held[key] -= 1
            if self._held[key] <= 0:
                del self._held[key]
        await super()._discard_session(session_id, transport)


class SessionsEndpoint:
    """The ASGI app for /mcp: the session manager, and the 429 for a principal over its quota."""

    def __init__(self, manager: PrincipalQuotaSessionManager) -> None:
        self.manager = manager
        self._over_quota = CannedResponse(
            429,
            jsonrpc_error(
                f"Too many open sessions for this user (at most {manager.per_principal}): end unused "
                "sessions with DELETE, or wait for them to expire"
            ),
            [("Retry-After", str(QUOTA_RETRY_AFTER))],
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.manager.asgi_app(scope, receive, send)
        except SessionQuotaReached:
            await self._over_quota.send(send)


def streamable_http_sessions(
    mcp: MCPServer, settings: Settings, transport_security: TransportSecuritySettings
) -> PrincipalQuotaSessionManager:
    """The session manager for /mcp, configured as the SDK's own would be, plus the quota.

    The event store makes 2025-11-25 SSE streams resumable (Last-Event-ID); the retry interval is
    the reconnection delay we suggest when we close a stream so the client polls (SEP-1699).
    MCP_SESSION_MODE=stateless keeps no 2025 session at all, so any instance serves any request
    (docs/operations.md); 2026-07-28 requests are stateless in either mode.
    """
    stateless = settings.mcp_session_mode == "stateless"
    # The SDK builds its manager with the server it drives; we build ours around that server.
    mcp.streamable_http_app(
        streamable_http_path="/mcp", host=settings.host, transport_security=transport_security
    )
    return PrincipalQuotaSessionManager(
        app=mcp.session_manager.app,
        stateless=stateless,
        event_store=None if stateless else InMemoryEventStore(),
        retry_interval=SSE_RETRY_INTERVAL_MS,
        security_settings=transport_security,
        max_sessions=settings.mcp_max_sessions,
        per_principal=settings.mcp_max_sessions_per_principal,
    )
