"""TR-05..TR-10: sessions are bound to the principal that opened them, and never authenticate.

2025-11-25 Streamable HTTP sessions and legacy HTTP+SSE sessions: another user's valid token with
the owner's session id gets 404, exactly as if the session did not exist. 2026-07-28 is
stateless: a session id is neither honoured nor minted.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator

from tests.integration.rs.conftest import (
    API_KEYS,
    LEGACY,
    MODERN,
    Mcp,
    Rs,
    bearer,
    initialize_body,
    legacy_headers,
    message,
    modern_request,
)

PING = {"jsonrpc": "2.0", "id": 7, "method": "ping"}


async def test_another_users_token_with_my_session_id_gets_404(rs: Rs) -> None:
    alice, bob = await rs.token("alice"), await rs.token("bob")
    session = await Mcp(rs.http, LEGACY).session(alice)
    stolen = await rs.http.post("/mcp", json=PING, headers=legacy_headers(bob, session))
    assert stolen.status_code == 404
    assert "result" not in stolen.text
    call = {"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}
    assert (await rs.http.post("/mcp", json=call, headers=legacy_headers(bob, session))).status_code == 404
    stream = await rs.http.get(
        "/mcp", headers={**legacy_headers(bob, session), "accept": "text/event-stream"}
    )
    assert stream.status_code == 404
    deleted = await rs.http.delete("/mcp", headers=legacy_headers(bob, session))
    assert deleted.status_code == 404
    # the owner's session is untouched by all of that
    mine = await rs.http.post("/mcp", json=PING, headers=legacy_headers(alice, session))
    assert mine.status_code == 200
    assert message(mine)["result"] == {}


async def test_the_same_user_with_a_new_token_keeps_the_session(rs: Rs) -> None:
    first, refreshed = await rs.token_and_refreshed("alice")  # same subject, client and issuer
    session = await Mcp(rs.http, LEGACY).session(first)
    assert refreshed != first
    response = await rs.http.post("/mcp", json=PING, headers=legacy_headers(refreshed, session))
    assert response.status_code == 200


async def test_an_api_key_user_cannot_use_an_oauth_users_session_of_the_same_name(rs: Rs) -> None:
    session = await Mcp(rs.http, LEGACY).session(await rs.token("alice"))
    response = await rs.http.post("/mcp", json=PING, headers=legacy_headers(API_KEYS["alice"], session))
    assert response.status_code == 404


async def test_session_ids_are_unique_visible_ascii_and_unguessable(rs: Rs) -> None:
    token = API_KEYS["alice"]
    ids = set()
    for _ in range(40):
        response = await rs.http.post("/mcp", json=initialize_body(), headers=legacy_headers(token))
        ids.add(response.headers["mcp-session-id"])
    assert len(ids) == 40
    for session in ids:
        assert re.fullmatch(r"[\x21-\x7E]+", session)
        assert len(session) >= 32  # 128 bits as hex


async def test_the_stateless_revision_ignores_and_never_mints_session_ids(rs: Rs) -> None:
    token = await rs.token("alice")
    response = await Mcp(rs.http, MODERN).post("tools/list", None, token, headers={"mcp-session-id": "x"})
    assert response.status_code == 200
    assert "mcp-session-id" not in response.headers
    stream = await rs.http.get(
        "/mcp", headers={**bearer(token), "accept": "text/event-stream", "mcp-protocol-version": MODERN}
    )
    assert stream.status_code == 405


async def _sse_event(lines: AsyncIterator[str], wanted: str) -> str:
    """The data of the next `wanted` event. `lines` is the stream's one line iterator: a fresh
    `aiter_lines()` per call would close the stream when it is garbage-collected."""
    event = None
    async for line in lines:
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:") and event == wanted:
            return line[5:].strip()
    raise AssertionError(f"stream ended before a {wanted} event")


async def test_legacy_sse_sessions_accept_messages_only_from_their_owner(rs: Rs) -> None:
    alice, bob = await rs.token("alice"), await rs.token("bob")
    async with rs.http.stream(
        "GET", "/sse", headers={**bearer(alice), "accept": "text/event-stream"}
    ) as stream:
        assert stream.status_code == 200
        lines = stream.aiter_lines()
        endpoint = await _sse_event(lines, "endpoint")
        assert endpoint.startswith("/messages/?session_id=")
        body = json.dumps(initialize_body()).encode()
        json_headers = {"content-type": "application/json"}
        assert (await rs.http.post(endpoint, content=body, headers=json_headers)).status_code == 401
        stolen = await rs.http.post(endpoint, content=body, headers={**json_headers, **bearer(bob)})
        assert stolen.status_code == 404
        accepted = await rs.http.post(endpoint, content=body, headers={**json_headers, **bearer(alice)})
        assert accepted.status_code == 202
        reply = json.loads(await _sse_event(lines, "message"))
        assert reply["result"]["serverInfo"]["name"] == "mcp-reference-server"


async def test_legacy_sse_messages_are_scope_checked_and_see_the_caller(rs: Rs) -> None:
    reader = await rs.token("alice", ["mcp:tools:read", "notes:read"])
    async with rs.http.stream(
        "GET", "/sse", headers={**bearer(reader), "accept": "text/event-stream"}
    ) as stream:
        lines = stream.aiter_lines()
        endpoint = await _sse_event(lines, "endpoint")
        headers = {"content-type": "application/json", **bearer(reader)}
        await rs.http.post(endpoint, json=initialize_body(), headers=headers)
        await _sse_event(lines, "message")
        await rs.http.post(
            endpoint, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers
        )
        write = {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "notes_add", "arguments": {}},
        }
        denied = await rs.http.post(endpoint, json=write, headers=headers)
        assert denied.status_code == 403
        who = {
            "jsonrpc": "2.0",
            "id": 4,
            "method": "tools/call",
            "params": {"name": "whoami", "arguments": {}},
        }
        assert (await rs.http.post(endpoint, json=who, headers=headers)).status_code == 202
        reply = json.loads(await _sse_event(lines, "message"))
        assert reply["id"] == 4
        assert reply["result"]["structuredContent"]["subject"] == "alice"


async def test_a_request_state_handle_minted_for_one_user_is_refused_for_another(rs: Rs) -> None:
    """TR-10: holding A's sealed `requestState` is not authentication; it is bound to A."""
    alice, bob = await rs.token("alice"), await rs.token("bob")
    mcp = Mcp(rs.http, MODERN, capabilities={"elicitation": {"form": {}}})
    tool = "test_input_required_result_request_state"
    first = await mcp.result("tools/call", {"name": tool, "arguments": {}}, alice)
    assert first.get("resultType") == "input_required" or "requestState" in first, first
    state = first["requestState"]
    retry = {
        "name": tool,
        "arguments": {},
        "requestState": state,
        "inputResponses": {"confirm": {"action": "accept", "content": {"ok": True}}},
    }
    stolen = await mcp.post("tools/call", retry, bob)
    reply = message(stolen)
    assert reply["error"]["code"] == -32602, reply  # "Invalid or expired requestState"
    assert "state-ok" not in stolen.text
    mine = await mcp.result("tools/call", retry, alice)
    assert "state-ok" in json.dumps(mine)


async def test_an_unsupported_protocol_version_gets_400_after_authentication(rs: Rs) -> None:
    """TR-03."""
    headers = {**legacy_headers(await rs.token("alice")), "mcp-protocol-version": "1999-01-01"}
    response = await rs.http.post("/mcp", json=PING, headers=headers)
    assert response.status_code == 400


async def test_routing_headers_are_compared_without_their_surrounding_whitespace(rs: Rs) -> None:
    """RFC 9110 5.5: a field value excludes leading and trailing whitespace, whichever HTTP parser
    uvicorn uses (httptools keeps it). Sent over a raw socket: HTTP clients refuse to send it."""
    body, headers = modern_request("tools/call", {"name": "echo", "arguments": {"message": "x"}})
    headers.update(bearer(await rs.token("alice")))
    headers.update({"mcp-name": "  echo \t", "mcp-method": " tools/call  "})
    payload = json.dumps(body).encode()
    head = ["POST /mcp HTTP/1.1", f"Host: 127.0.0.1:{rs.server.port}", "Connection: close"]
    head += [f"{name}:{value}" for name, value in headers.items()]
    head += [f"Content-Length: {len(payload)}", "", ""]
    reader, writer = await asyncio.open_connection("127.0.0.1", rs.server.port)
    try:
        writer.write("\r\n".join(head).encode("latin-1") + payload)
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    assert b'"result"' in answer
    assert b"-32020" not in answer


async def test_a_routing_header_that_contradicts_the_body_gets_400_header_mismatch(rs: Rs) -> None:
    """TR-11: with every scope the call needs, the SDK still refuses the desynced request."""
    token = await rs.token("alice")
    response = await Mcp(rs.http, MODERN).post(
        "tools/call", {"name": "echo", "arguments": {"message": "x"}}, token, headers={"mcp-name": "whoami"}
    )
    assert response.status_code == 400
    assert message(response)["error"]["code"] == -32020
