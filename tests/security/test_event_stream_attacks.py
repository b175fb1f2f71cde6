"""Resuming a 2025-11-25 SSE stream never replays another session's events.

The attack: the SDK names a request's SSE stream after its JSON-RPC id ("5"), and the server kept
one event store for every session. Every client numbers its requests 0, 1, 2..., so the streams
of different users with the same request id were one stream in the store. A signed-in user
(bob) called a tool with id 5 and kept the event id of its own answer; once another user (alice)
called a tool with id 5, bob reconnected (GET with `Last-Event-ID: <his own event id>`) in his
own session and was sent alice's answer. Now each session sees the store through a view of its
own (`mcp_server/event_store.py`): its streams are its own, and an event id of another session
is unknown to it. The real process, internal mode (the event store is the MCP server's, the same
in either mode), memory and Redis.
"""

from __future__ import annotations

import asyncio
import functools
import json
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx2
import pytest

from auth_server.users import scrypt_hash
from tests.e2e import oauth_flow
from tests.e2e.servers import Deployment

LEGACY = "2025-11-25"
PASSWORD = "correct horse battery staple"


@functools.cache
def users() -> str:
    return json.dumps({name: scrypt_hash(PASSWORD, n=2**10) for name in ("alice", "bob")})


@pytest.fixture(params=["memory", "redis"])
def server(request: pytest.FixtureRequest, start_deployment: Callable[..., Deployment]) -> Deployment:
    return start_deployment("internal", request.param, env={"AUTH_USERS": users()})


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(timeout=30, trust_env=False) as client:
        yield client


def sse_events(text: str) -> list[dict[str, Any]]:
    """Each SSE event of a response: its `id` and its parsed `data` (None for a priming event)."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "id" in fields:
            data = fields.get("data", "").strip()
            events.append({"id": fields["id"], "data": json.loads(data) if data else None})
    return events


async def session_of(server: Deployment, http: httpx2.AsyncClient, user: str) -> dict[str, str]:
    grant = await asyncio.to_thread(
        oauth_flow.mint, server.mcp_url, scope="mcp:tools:read", user=(user, PASSWORD)
    )
    headers = oauth_flow.mcp_headers(grant.tokens.access_token, LEGACY)
    init = await http.post(
        server.mcp_url, headers=headers, json=oauth_flow.initialize_request(LEGACY, name=user, id=0)
    )
    assert init.status_code == 200, init.text
    headers["mcp-session-id"] = init.headers["mcp-session-id"]
    await http.post(
        server.mcp_url, headers=headers, json={"jsonrpc": "2.0", "method": "notifications/initialized"}
    )
    return headers


def progress_call(marker: str) -> dict[str, Any]:
    """tools/call with JSON-RPC id 5 (the same id in every session: the SDK names streams after
    it) of a tool that streams progress notifications carrying the progress token `marker`."""
    return {
        "jsonrpc": "2.0",
        "id": 5,
        "method": "tools/call",
        "params": {"name": "test_tool_with_progress", "arguments": {}, "_meta": {"progressToken": marker}},
    }


async def call_with_progress(
    server: Deployment, http: httpx2.AsyncClient, headers: dict[str, str], marker: str
) -> list[dict[str, Any]]:
    """`progress_call(marker)`, answered over SSE: its events (the progress, then the result)."""
    response = await http.post(server.mcp_url, headers=headers, json=progress_call(marker))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return sse_events(response.text)


async def resume(mcp_url: str, http: httpx2.AsyncClient, headers: dict[str, str], event_id: str) -> str:
    """GET the stream after `event_id`; what arrives before the server or the wait ends it."""
    received = ""
    try:
        async with (
            asyncio.timeout(3),
            http.stream(
                "GET",
                mcp_url,
                headers={**headers, "accept": "text/event-stream", "last-event-id": event_id},
            ) as stream,
        ):
            async for chunk in stream.aiter_text():
                received += chunk
    except TimeoutError:
        pass  # a resumed stream stays open: what it sent is all that matters
    return received


async def test_resuming_ones_own_stream_never_replays_another_users_answer(
    server: Deployment, http: httpx2.AsyncClient
) -> None:
    bob = await session_of(server, http, "bob")
    alice = await session_of(server, http, "alice")
    own = await call_with_progress(server, http, bob, "bob's own call")
    secret = f"alice's secret {secrets.token_hex(8)}"
    answered = await call_with_progress(server, http, alice, secret)
    assert any(secret in json.dumps(event["data"]) for event in answered)

    for event in own:  # every event id bob was given, the priming one included
        assert secret not in await resume(server.mcp_url, http, bob, event["id"])
    for event in answered:  # and alice's own ids, had he learned them (logs, a proxy)
        assert secret not in await resume(server.mcp_url, http, bob, event["id"])
