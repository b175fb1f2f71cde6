"""The in-memory SSE event store: replay after an id, per stream, within a size bound."""

from __future__ import annotations

import pytest
from mcp.server.streamable_http import EventMessage
from mcp_types import JSONRPCMessage, JSONRPCNotification

from mcp_server.event_store import InMemoryEventStore


def note(n: int) -> JSONRPCMessage:
    return JSONRPCNotification(jsonrpc="2.0", method="notifications/progress", params={"progress": n})


async def replayed(store: InMemoryEventStore, last_event_id: str) -> tuple[str | None, list[int]]:
    sent: list[EventMessage] = []

    async def collect(event: EventMessage) -> None:
        sent.append(event)

    stream = await store.replay_events_after(last_event_id, collect)
    return stream, [event.message.params["progress"] for event in sent]  # type: ignore[union-attr,index]


async def test_replay_sends_only_the_later_events_of_the_same_stream_and_skips_priming() -> None:
    store = InMemoryEventStore()
    priming = await store.store_event("a", None)
    first = await store.store_event("a", note(1))
    await store.store_event("b", note(99))
    await store.store_event("a", note(2))
    await store.store_event("a", note(3))

    assert await replayed(store, first) == ("a", [2, 3])
    assert await replayed(store, priming) == ("a", [1, 2, 3])


async def test_an_unknown_event_id_replays_nothing() -> None:
    store = InMemoryEventStore()
    await store.store_event("a", note(1))

    assert await replayed(store, "not-an-id") == (None, [])


async def test_the_oldest_events_are_forgotten_beyond_the_bound() -> None:
    store = InMemoryEventStore(max_events=3)
    oldest = await store.store_event("a", note(1))
    second = await store.store_event("a", note(2))
    await store.store_event("b", note(3))
    await store.store_event("a", note(4))

    assert await replayed(store, oldest) == (None, [])
    assert await replayed(store, second) == ("a", [4])


async def test_event_ids_are_unguessable_so_one_session_cannot_name_another_sessions_events() -> None:
    store = InMemoryEventStore()
    ids = {await store.store_event("a", note(n)) for n in range(50)}

    assert len(ids) == 50
    assert all(len(event_id) >= 20 for event_id in ids)


def test_a_store_must_keep_at_least_one_event() -> None:
    with pytest.raises(ValueError, match="positive"):
        InMemoryEventStore(max_events=0)
