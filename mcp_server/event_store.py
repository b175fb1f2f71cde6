"""A bounded in-memory event store: resumable SSE streams for Streamable HTTP (2025-11-25).

With an event store the SDK stamps every SSE event with an id and keeps it, so a client whose
stream broke (or that the server closed on purpose to make it poll, SEP-1699) reconnects with
`Last-Event-ID` and receives what it missed. Events live in this process only: a restart or
another replica forgets them, and the client then simply re-sends its request.

Event ids are random (128 bits), not counters: the store is shared by every session, so an id
must not let one client guess its way into another session's stream.
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
