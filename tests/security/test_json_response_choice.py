"""Attacks on the per-request choice of a JSON body or an SSE stream (mcp_server/responses.py).

The choice reads the JSON-RPC body before the SDK does (the scope check's parse, or its own when
there is no authentication), so an attacker would try to make it read a different request than
the SDK runs, or to make it buffer without bound. Against the real `python -m mcp_server`:

- duplicate `name` keys: the choice and the SDK both take the last one, so a streaming tool
  smuggled behind a quiet tool's name still streams (its log notifications arrive), and a quiet
  tool behind a streaming one is answered as the SDK ran it;
- a body over the SDK's limit without authentication: refused 413 by the SDK's own limit after at
  most that much was read, never a 500, and the server keeps serving;
- a 2025-11-25 request marked JSON must not leak its choice into the next request on the same
  connection: a streaming call right after a quiet one on one keep-alive connection streams.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from tests.e2e.servers import Deployment

LEGACY = "2025-11-25"
ACCEPT = "application/json, text/event-stream"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    from tests.e2e.servers import build_deployment

    running = build_deployment("none", "memory", tmp_path_factory.mktemp("json-choice"))
    running.start()
    try:
        yield running
    finally:
        running.stop()


def session(http: httpx2.Client, deployment: Deployment) -> dict[str, str]:
    headers = {"accept": ACCEPT, "content-type": "application/json", "mcp-protocol-version": LEGACY}
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": LEGACY,
            "capabilities": {},
            "clientInfo": {"name": "attacker", "version": "1"},
        },
    }
    opened = http.post(deployment.mcp_url, json=body, headers=headers)
    assert opened.status_code == 200, opened.text
    headers["mcp-session-id"] = opened.headers["mcp-session-id"]
    acked = http.post(
        deployment.mcp_url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers
    )
    assert acked.status_code == 202
    level = {"jsonrpc": "2.0", "id": 2, "method": "logging/setLevel", "params": {"level": "info"}}
    assert http.post(deployment.mcp_url, json=level, headers=headers).status_code == 200
    return headers


def logs_in(response: httpx2.Response) -> list[dict[str, Any]]:
    sent = [
        json.loads(line[5:])
        for line in response.text.splitlines()
        if line.startswith("data:") and line[5:].strip()
    ]
    return [m for m in sent if m.get("method") == "notifications/message"]


def test_a_streaming_tool_behind_a_quiet_tools_name_still_streams(server: Deployment) -> None:
    with httpx2.Client(timeout=10.0, trust_env=False) as http:
        headers = session(http, server)
        raw = (
            b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":'
            b'{"name":"echo","name":"test_tool_with_logging","arguments":{}}}'
        )
        response = http.post(server.mcp_url, content=raw, headers=headers)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    assert len(logs_in(response)) == 3  # the tool that ran is the one the choice read


def test_a_quiet_tool_behind_a_streaming_tools_name_is_answered_as_it_ran(server: Deployment) -> None:
    with httpx2.Client(timeout=10.0, trust_env=False) as http:
        headers = session(http, server)
        raw = (
            b'{"jsonrpc":"2.0","id":4,"method":"tools/call","params":'
            b'{"name":"test_tool_with_logging","name":"echo","arguments":{"message":"last"}}}'
        )
        response = http.post(server.mcp_url, content=raw, headers=headers)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["result"]["content"][0]["text"] == "last"


def test_an_oversized_body_without_authentication_is_413_and_the_server_keeps_serving(
    server: Deployment,
) -> None:
    with httpx2.Client(timeout=30.0, trust_env=False) as http:
        headers = session(http, server)
        padding = "x" * (5 * 1024 * 1024)
        raw = json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 5,
                "method": "tools/call",
                "params": {"name": "echo", "arguments": {"message": padding}},
            }
        )
        refused = http.post(server.mcp_url, content=raw, headers=headers)
        after = http.post(
            server.mcp_url,
            json={
                "jsonrpc": "2.0",
                "id": 6,
                "method": "tools/call",
                "params": {"name": "echo", "arguments": {"message": "ok"}},
            },
            headers=headers,
        )

    assert refused.status_code == 413, refused.text[:300]
    assert after.status_code == 200
    assert after.json()["result"]["content"][0]["text"] == "ok"


def test_a_json_answer_does_not_carry_over_to_the_next_request_on_the_connection(server: Deployment) -> None:
    with httpx2.Client(timeout=10.0, trust_env=False, limits=httpx2.Limits(max_connections=1)) as http:
        headers = session(http, server)
        quiet = http.post(
            server.mcp_url,
            json={
                "jsonrpc": "2.0",
                "id": 7,
                "method": "tools/call",
                "params": {"name": "echo", "arguments": {"message": "q"}},
            },
            headers=headers,
        )
        streaming = http.post(
            server.mcp_url,
            json={
                "jsonrpc": "2.0",
                "id": 8,
                "method": "tools/call",
                "params": {"name": "test_tool_with_logging", "arguments": {}},
            },
            headers=headers,
        )

    assert quiet.headers["content-type"].startswith("application/json")
    assert streaming.headers["content-type"].startswith("text/event-stream")
    assert len(logs_in(streaming)) == 3
