"""A bounded in-memory event store: resumable SSE streams for Streamable HTTP (2025-11-25).

With an event store the SDK stamps every SSE event with an id and keeps it, so a client whose
stream broke (or that the server closed on purpose to make it poll, SEP-1699) reconnects with
`Last-Event-ID` and receives what it missed. Events live in this process only: a restart or
another replica forgets them, and the client then simply re-sends its request.

Event ids are random (128 bits), not counters. The store is shared by every session, and the SDK
names a stream after its request's JSON-RPC id ("5"), which every client numbers from 0: two
users' requests with one id were one stream here, and resuming one's own stream replayed the
other's answers. So each session's transport gets a `SessionEvents` view (`InMemoryEventStore.
for_session`): stream ids qualified by a random scope of its own, and an event id of another
session unknown to it, however it was learned (tests/security/test_event_stream_attacks.py).
"""

from __future__ import annotations

import secrets
from collections import deque
from typing import Final

from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId
from mcp_types import JSONRPCMessage

DEFAULT_MAX_EVENTS: Final = 10_000


class InMemoryEventStore(EventStore):
    """Keeps the most recent `max_events` events of all streams; the oldest are forgotten first."""

    def __init__(self, max_events: int = DEFAULT_MAX_EVENTS) -> None:
        if max_events <= 0:
            raise ValueError("max_events must be positive")
        self._max_events = max_events
        self._order: deque[EventId] = deque()
        self._stream_of: dict[EventId, StreamId] = {}
        self._streams: dict[StreamId, deque[tuple[EventId, JSONRPCMessage | None]]] = {}

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        """Keep `message` (None for a stream's priming event) and return its new id."""
        event_id = secrets.token_urlsafe(16)
        self._order.append(event_id)
        self._stream_of[event_id] = stream_id
        self._streams.setdefault(stream_id, deque()).append((event_id, message))
        while len(self._order) > self._max_events:
            self._forget(self._order.popleft())
        return event_id

    def _forget(self, event_id: EventId) -> None:
        stream_id = self._stream_of.pop(event_id)
        events = self._streams[stream_id]
        events.popleft()  # a stream's oldest event is the oldest of all still kept for it
        if not events:
            del self._streams[stream_id]

    def for_session(self) -> SessionEvents:
        """A view of this store for one session's transport: its own streams only."""
        return SessionEvents(self)

    def stream_of(self, event_id: EventId) -> StreamId | None:
        return self._stream_of.get(event_id)

    async def replay_events_after(
        self, last_event_id: EventId, send_callback: EventCallback
    ) -> StreamId | None:
        """Send the events of `last_event_id`'s stream that came after it; None if the id is unknown."""
        stream_id = self._stream_of.get(last_event_id)
        if stream_id is None:
            return None
        after = False
        for event_id, message in list(self._streams[stream_id]):
            if after and message is not None:
                await send_callback(EventMessage(message, event_id))
            after = after or event_id == last_event_id
        return stream_id


class SessionEvents(EventStore):
    """One session's view of the shared store: the streams it stored, and no other."""

    def __init__(self, shared: InMemoryEventStore) -> None:
        self._shared = shared
        self._scope = secrets.token_urlsafe(12) + "/"

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        return await self._shared.store_event(self._scope + stream_id, message)

    async def replay_events_after(
        self, last_event_id: EventId, send_callback: EventCallback
    ) -> StreamId | None:
        """Replay only when `last_event_id` is an event of this session (None: unknown, as for an
        id nobody issued); the stream id given back is the session's own name for it."""
        stream = self._shared.stream_of(last_event_id)
        if stream is None or not stream.startswith(self._scope):
            return None
        replayed = await self._shared.replay_events_after(last_event_id, send_callback)
        return replayed.removeprefix(self._scope) if replayed is not None else None
