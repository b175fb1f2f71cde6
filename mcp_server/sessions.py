"""Sessions held in this process, both transports: a global cap and a quota per principal.

A stateful 2025-11-25 session (MCP_SESSION_MODE=stateful) is a transport, a server task and an
event buffer in this process, kept until the client deletes it or it idles out (the SDK's 30
minutes); a session of the deprecated HTTP+SSE transport (/sse) lives as long as its GET stream.
The SDK's only limit was its global cap on the first kind (10,000 sessions, then 503), and the
second kind had none: one principal opening sessions in a loop held every one (everyone else got
503 for half an hour), or held thousands of /sse streams (and their memory and file descriptors).

`SessionLedger` counts both kinds together: at most MCP_MAX_SESSIONS in the process (one more is
503, as the SDK answers) and at most MCP_MAX_SESSIONS_PER_PRINCIPAL per principal (one more is
429 with Retry-After); either way a JSON-RPC error body, and the principal's existing sessions,
and everyone else's, carry on.

"Principal" here is the user: the token's issuer and subject, whichever client presents it, so
registering more clients buys no more sessions. Without authentication (AUTH_MODE=none, loopback
only) there is no principal and only the global cap applies.

A streamable session is counted where the SDK admits it (`_admit_session`, under its creation
lock, so concurrent initializes cannot overshoot) and released where the SDK discards it
(`_discard_session`: client DELETE, idle timeout, crash, or an initialize that failed); an /sse
session while its stream is open (`LegacySseQuota`).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from mcp.server.auth.middleware.bearer_auth import (
    AuthenticatedUser,
    AuthorizationContext,
    authorization_context,
)
from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http import EventStore, StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import INTERNAL_ERROR
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_server.event_store import InMemoryEventStore
from mcp_server.protection._asgi import CannedResponse, jsonrpc_error
from mcp_server.responses import PerRequestTransport, answering_as_json
from shared.settings import Settings

logger = logging.getLogger(__name__)

SSE_RETRY_INTERVAL_MS = 1000  # reconnection delay suggested to clients after we close an SSE stream
QUOTA_RETRY_AFTER = 60  # seconds: sessions end by DELETE, when their stream closes, or idle

PrincipalKey = tuple[str | None, str | None]  # (issuer, subject)


class SessionRefused(Exception):
    """No new session: raised where a session would be admitted, answered before anything is sent."""

    def __init__(self, response: CannedResponse) -> None:
        super().__init__(response.status)
        self.response = response


def principal_key(context: AuthorizationContext | None) -> PrincipalKey | None:
    return None if context is None else (context["issuer"], context["subject"])


def requestor_of(scope: Scope) -> AuthorizationContext | None:
    user = scope.get("user")
    return authorization_context(user) if isinstance(user, AuthenticatedUser) else None


class SessionLedger:
    """How many sessions each principal, and the process, holds; refuses one too many."""

    def __init__(self, *, total: int, per_principal: int) -> None:
        self.total = total
        self.per_principal = per_principal
        self._held: Counter[PrincipalKey] = Counter()
        self._open = 0
        self._over_quota = CannedResponse(
            429,
            jsonrpc_error(
                f"Too many open sessions for this user (at most {per_principal}): end unused sessions "
                "(DELETE, or close their stream), or wait for them to expire"
            ),
            [("Retry-After", str(QUOTA_RETRY_AFTER))],
        )
        self._full = CannedResponse(503, jsonrpc_error("Too many open sessions", code=INTERNAL_ERROR))

    def held_by(self, issuer: str | None, subject: str | None) -> int:
        """How many open sessions the principal holds (tests, metrics)."""
        return self._held[(issuer, subject)]

    def take(self, key: PrincipalKey | None) -> None:
        """Count one more session for `key`, or raise SessionRefused (synchronous: no await can
        slip between the check and the count)."""
        if key is not None and self._held[key] >= self.per_principal:
            logger.warning(
                "refusing a new session for %s: it holds %d (MCP_MAX_SESSIONS_PER_PRINCIPAL)",
                (key[1] or "")[:100],
                self._held[key],
            )
            raise SessionRefused(self._over_quota)
        if self._open >= self.total:
            logger.warning("refusing a new session: %d are open (MCP_MAX_SESSIONS)", self._open)
            raise SessionRefused(self._full)
        self._open += 1
        if key is not None:
            self._held[key] += 1

    def give_back(self, key: PrincipalKey | None) -> None:
        self._open -= 1
        if key is not None:
            self._held[key] -= 1
            if self._held[key] <= 0:
                del self._held[key]


class PrincipalQuotaSessionManager(StreamableHTTPSessionManager):
    """The SDK's StreamableHTTPSessionManager, admitting sessions through a `SessionLedger`."""

    def __init__(self, *args: Any, ledger: SessionLedger, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ledger = ledger
        self._holder: dict[str, PrincipalKey | None] = {}

    # The SDK hands `self.event_store` to each session's transport as it creates it (and reads it
    # nowhere else): each gets a view of the shared store of its own, never another's streams.
    @property
    def event_store(self) -> EventStore | None:
        shared = self._shared_events
        return shared.for_session() if isinstance(shared, InMemoryEventStore) else shared

    @event_store.setter
    def event_store(self, value: EventStore | None) -> None:
        self._shared_events = value

    # The SDK reads this per request: a stateless 2025-11-25 request gets a fresh transport built
    # with it, and 2026-07-28 requests are never marked (mcp_server/responses.py).
    @property
    def json_response(self) -> bool:
        return answering_as_json()

    @json_response.setter
    def json_response(self, value: bool) -> None:
        if value:
            raise ValueError("JSON answers are chosen per request (mcp_server/responses.py)")

    def _admit_session(self, requestor: AuthorizationContext | None) -> StreamableHTTPServerTransport | None:
        key = principal_key(requestor)
        self.ledger.take(key)
        transport = super()._admit_session(requestor)
        if transport is None or transport.mcp_session_id is None:
            self.ledger.give_back(key)
            return transport
        # The SDK's transport, admitted by the SDK's own rules, made to answer JSON or SSE per
        # request: only a class-level property can stand in for its flag attribute.
        transport.__class__ = PerRequestTransport
        self._holder[transport.mcp_session_id] = key
        return transport

    async def _discard_session(self, session_id: str, transport: StreamableHTTPServerTransport) -> None:
        if session_id in self._holder:  # before any await: released exactly once
            self.ledger.give_back(self._holder.pop(session_id))
        await super()._discard_session(session_id, transport)


class SessionsEndpoint:
    """The ASGI app for /mcp: the session manager, answering a refused session itself."""

    def __init__(self, manager: PrincipalQuotaSessionManager) -> None:
        self.manager = manager

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.manager.asgi_app(scope, receive, send)
        except SessionRefused as refused:
            await refused.response.send(send)


class LegacySseQuota:
    """ASGI middleware for the HTTP+SSE transport: each GET stream (one session) is counted in
    the ledger while it is open."""

    def __init__(self, app: ASGIApp, ledger: SessionLedger) -> None:
        self.app = app
        self.ledger = ledger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        key = principal_key(requestor_of(scope))
        try:
            self.ledger.take(key)
        except SessionRefused as refused:
            await refused.response.send(send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.ledger.give_back(key)


def session_ledger(settings: Settings) -> SessionLedger:
    return SessionLedger(
        total=settings.mcp_max_sessions, per_principal=settings.mcp_max_sessions_per_principal
    )


def streamable_http_sessions(
    mcp: MCPServer, settings: Settings, transport_security: TransportSecuritySettings, ledger: SessionLedger
) -> PrincipalQuotaSessionManager:
    """The session manager for /mcp, configured as the SDK's own would be, admitting through `ledger`.

    The event store makes 2025-11-25 SSE streams resumable (Last-Event-ID); the retry interval is
    the reconnection delay we suggest when we close a stream so the client polls (SEP-1699).
    MCP_SESSION_MODE=stateless keeps no 2025 session at all, so any instance serves any request
    (docs/operations.md); 2026-07-28 requests are stateless in either mode.
    """
    stateless = settings.mcp_session_mode == "stateless"
    # The SDK builds its manager with the server it drives; we build ours around that server.
    mcp.streamable_http_app(host=settings.host, transport_security=transport_security)
    return PrincipalQuotaSessionManager(
        app=mcp.session_manager.app,
        stateless=stateless,
        event_store=None if stateless else InMemoryEventStore(),
        retry_interval=SSE_RETRY_INTERVAL_MS,
        security_settings=transport_security,
        max_sessions=None,  # the ledger's cap counts both transports
        ledger=ledger,
    )
