"""2025-11-25 requests that cannot stream anything are answered with one JSON body; the others keep
their SSE stream (MCP_JSON_RESPONSES, mcp_server/responses.py).

Against the real app on uvicorn, over plain HTTP on a 2025-11-25 session: what each kind of
request is answered with, that streaming tools still stream (log notifications arrive, on the
request's own stream), that the choice is made per request on one session (a streaming call and a
quiet call at the same time each get their own answer), the same in stateless mode and without
authentication (where the body is read by the choice itself), and that MCP_JSON_RESPONSES=never
gives the SDK's SSE answers back.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.integration.rs.conftest import LEGACY, Mcp, Rs, StartRs, message

INTERNAL = pytest.mark.parametrize("rs", ["internal"], indirect=True)  # tokens from our own AS

JSON = "application/json"
SSE = "text/event-stream"


def content_type(response: Any) -> str:
    return str(response.headers.get("content-type", "")).split(";")[0]


def events(response: Any) -> list[dict[str, Any]]:
    """Every JSON-RPC message of an SSE answer, in order."""
    return [
        json.loads(line[5:])
        for line in response.text.splitlines()
        if line.startswith("data:") and line[5:].strip()
    ]


async def call(mcp: Mcp, token: str | None, tool: str, **arguments: Any) -> Any:
    return await mcp.post("tools/call", {"name": tool, "arguments": arguments}, token)


@INTERNAL
async def test_a_tool_without_a_context_is_answered_with_one_json_body(rs: Rs) -> None:
    mcp = Mcp(rs.http, LEGACY)
    token = await rs.token("alice")
    response = await call(mcp, token, "echo", message="hello")

    assert response.status_code == 200
    assert content_type(response) == JSON
    assert response.headers["mcp-session-id"] == mcp.sessions[token]
    assert message(response)["result"]["content"][0]["text"] == "hello"


@INTERNAL
async def test_tools_declared_quiet_and_lists_are_answered_with_json(rs: Rs) -> None:
    mcp = Mcp(rs.http, LEGACY)
    token = await rs.token("alice")
    whoami = await call(mcp, token, "whoami")
    notes = await call(mcp, token, "notes_list")
    listed = await mcp.post("tools/list", None, token)
    ping = await mcp.post("ping", None, token)

    assert [content_type(r) for r in (whoami, notes, listed, ping)] == [JSON] * 4
    assert message(whoami)["result"]["structuredContent"]["subject"] == "alice"
    assert message(notes)["result"]["structuredContent"]["owner"] == "alice"
    assert "echo" in [tool["name"] for tool in message(listed)["result"]["tools"]]
    assert message(ping)["result"] == {}


@INTERNAL
async def test_a_tool_that_logs_keeps_its_stream_and_its_notifications(rs: Rs) -> None:
    mcp = Mcp(rs.http, LEGACY)
    token = await rs.token("alice")
    await mcp.post("logging/setLevel", {"level": "info"}, token)
    response = await call(mcp, token, "test_tool_with_logging")

    assert content_type(response) == SSE
    sent = events(response)
    logs = [m for m in sent if m.get("method") == "notifications/message"]
    assert len(logs) == 3, sent
    assert "sent 3 log notifications" in sent[-1]["result"]["content"][0]["text"]


@INTERNAL
async def test_initialize_and_prompts_keep_the_stream(rs: Rs) -> None:
    mcp = Mcp(rs.http, LEGACY)
    token = await rs.token("alice")
    prompt = await mcp.post("prompts/get", {"name": "test_simple_prompt", "arguments": {}}, token)

    assert content_type(prompt) == SSE
    assert message(prompt)["result"]["messages"]


@INTERNAL
async def test_a_quiet_call_and_a_streaming_call_on_one_session_each_get_their_own_answer(rs: Rs) -> None:
    mcp = Mcp(rs.http, LEGACY)
    token = await rs.token("alice")
    await mcp.session(token)
    await mcp.post("logging/setLevel", {"level": "info"}, token)
    streaming = asyncio.create_task(call(mcp, token, "test_tool_with_logging"))
    quiet = [await call(mcp, token, "echo", message=f"m{n}") for n in range(3)]  # while it streams
    streamed = await streaming

    assert [content_type(r) for r in quiet] == [JSON] * 3
    assert [message(r)["result"]["content"][0]["text"] for r in quiet] == ["m0", "m1", "m2"]
    assert content_type(streamed) == SSE
    assert len([m for m in events(streamed) if m.get("method") == "notifications/message"]) == 3


async def test_stateless_2025_requests_choose_the_same_way(start_rs: StartRs) -> None:
    rs = await start_rs("internal", mcp_session_mode="stateless")
    token = await rs.token("alice")
    headers = {
        "accept": "application/json, text/event-stream",
        "content-type": "application/json",
        "mcp-protocol-version": LEGACY,
        "authorization": f"Bearer {token}",
    }
    body = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": "echo", "arguments": {"message": "x"}},
    }
    quiet = await rs.http.post("/mcp", json=body, headers=headers)
    body = {"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"name": "test_tool_with_logging"}}
    streaming = await rs.http.post("/mcp", json=body, headers=headers)

    assert "mcp-session-id" not in quiet.headers
    assert content_type(quiet) == JSON
    assert message(quiet)["result"]["content"][0]["text"] == "x"
    assert content_type(streaming) == SSE
    assert "sent 3 log notifications" in message(streaming)["result"]["content"][0]["text"]


async def test_without_authentication_the_choice_reads_the_body_itself(start_rs: StartRs) -> None:
    rs = await start_rs("internal", auth_mode="none")
    mcp = Mcp(rs.http, LEGACY)
    session = await mcp.session(None)  # type: ignore[arg-type]  # AUTH_MODE=none: no token
    headers = {
        "accept": "application/json, text/event-stream",
        "content-type": "application/json",
        "mcp-protocol-version": LEGACY,
        "mcp-session-id": session,
    }
    body = {
        "jsonrpc": "2.0",
        "id": 9,
        "method": "tools/call",
        "params": {"name": "echo", "arguments": {"message": "y"}},
    }
    quiet = await rs.http.post("/mcp", json=body, headers=headers)
    body = {"jsonrpc": "2.0", "id": 10, "method": "tools/call", "params": {"name": "test_tool_with_logging"}}
    streaming = await rs.http.post("/mcp", json=body, headers=headers)

    assert content_type(quiet) == JSON
    assert message(quiet)["result"]["content"][0]["text"] == "y"
    assert content_type(streaming) == SSE


async def test_never_gives_every_2025_request_its_sse_stream_back(start_rs: StartRs) -> None:
    rs = await start_rs("internal", mcp_json_responses="never")
    mcp = Mcp(rs.http, LEGACY)
    token = await rs.token("alice")
    response = await call(mcp, token, "echo", message="z")

    assert content_type(response) == SSE
    assert message(response)["result"]["content"][0]["text"] == "z"


@INTERNAL
async def test_a_client_that_does_not_accept_sse_is_refused_as_before(rs: Rs) -> None:
    mcp = Mcp(rs.http, LEGACY)
    token = await rs.token("alice")
    response = await call(mcp, token, "echo", message="x")
    assert response.status_code == 200
    only_json = await mcp.post(
        "tools/call", {"name": "echo", "arguments": {"message": "x"}}, token, headers={"accept": JSON}
    )

    assert only_json.status_code == 406
