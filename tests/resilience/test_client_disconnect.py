"""Clients that hang up in the middle of a tool call must not hurt anyone else.

One `python -m mcp_server` (internal mode). Waves of clients start `test_tool_with_progress` with
a progress token (the answer streams as SSE), read the first progress event, and drop the TCP
connection while the tool is still running; on both revisions (a 2025-11-25 session, and
stateless 2026-07-28). Meanwhile a bystander calls `whoami` without pause. The bystander must get
every answer, promptly; the cut 2025 session must still serve its owner; the server must stay
healthy and log no error for what is, from its side, an ordinary event.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.resilience.cluster import (
    ACCEPT,
    LEGACY,
    TIMEOUT,
    Cluster,
    build_cluster,
    http_client,
    mint,
    modern_call,
    rpc_result,
    running,
    structured,
)

pytestmark = pytest.mark.timeout(60)

WAVES = 4
PER_WAVE = 10
BYSTANDER_BOUND = 2.0  # seconds: far above a normal whoami (~ms), far below "stuck"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    deployment = build_cluster(
        "internal", Path(tmp_path_factory.mktemp("disconnect")), redis_url=None, instances=1
    )
    with running(deployment):
        yield deployment


def legacy_headers(token: str, session: str | None = None) -> dict[str, str]:
    headers = {
        "accept": ACCEPT,
        "content-type": "application/json",
        "mcp-protocol-version": LEGACY,
        "authorization": f"Bearer {token}",
    }
    if session:
        headers["mcp-session-id"] = session
    return headers


async def open_session(http: httpx2.AsyncClient, url: str, token: str) -> str:
    initialize = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": LEGACY,
            "capabilities": {},
            "clientInfo": {"name": "cut", "version": "1"},
        },
    }
    opened = await http.post(url, json=initialize, headers=legacy_headers(token))
    assert opened.status_code == 200, opened.text
    session = opened.headers["mcp-session-id"]
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert (await http.post(url, json=note, headers=legacy_headers(token, session))).status_code == 202
    return session


async def hang_up_after_first_progress(url: str, body: dict[str, Any], headers: dict[str, str]) -> bool:
    """POST, read until the first progress notification, then drop the connection. True if the
    call was really cut mid-way (progress seen, result not)."""
    async with (
        httpx2.AsyncClient(timeout=TIMEOUT, trust_env=False) as http,  # its own connection
        http.stream("POST", url, json=body, headers=headers) as response,
    ):
        assert response.status_code == 200, await response.aread()
        async for line in response.aiter_lines():
            payload = line[5:].strip() if line.startswith("data:") else ""
            if payload:  # (the 2025 event store primes each stream with an empty event)
                message = json.loads(payload)
                if message.get("method") == "notifications/progress":
                    return True
                if "result" in message:
                    return False
    return False


def progress_call(request_id: int, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {
            "name": "test_tool_with_progress",
            "arguments": {},
            "_meta": {**(meta or {}), "progressToken": f"p{request_id}"},
        },
    }


async def cut_calls(url: str, token: str, session: str) -> int:
    """Waves of calls hung up on mid-way, half on the 2025 session, half stateless 2026."""
    cut = 0
    for wave in range(WAVES):
        calls = []
        for n in range(PER_WAVE):
            request_id = wave * 100 + n + 1
            if n % 2:  # the 2025 session, whose POST streams its own SSE response
                headers = legacy_headers(token, session)
                calls.append(hang_up_after_first_progress(url, progress_call(request_id), headers))
            else:
                body, headers = modern_call("test_tool_with_progress", {}, token)
                body["params"]["_meta"]["progressToken"] = f"p{request_id}"
                calls.append(hang_up_after_first_progress(url, body, headers))
        cut += sum(await asyncio.wait_for(asyncio.gather(*calls), 20))
    await asyncio.sleep(0.3)  # the abandoned tools finish (or are cancelled) meanwhile
    return cut


async def test_clients_that_disconnect_mid_tool_call_leave_the_server_serving_everyone_else(
    cluster: Cluster,
) -> None:
    url = f"{cluster.url(0)}/mcp"
    with http_client() as browser:
        token = mint(cluster, browser).access_token
    latencies: list[float] = []
    statuses: list[int] = []
    stop = asyncio.Event()

    async with httpx2.AsyncClient(timeout=TIMEOUT, trust_env=False) as http:
        session = await open_session(http, url, token)

        async def bystander() -> None:
            body, headers = modern_call("whoami", {}, token)
            while not stop.is_set():
                started = time.monotonic()
                response = await http.post(url, json=body, headers=headers)
                latencies.append(time.monotonic() - started)
                statuses.append(response.status_code)

        watching = asyncio.create_task(bystander())
        cut = 0
        try:
            cut = await cut_calls(url, token, session)
        finally:
            stop.set()
            await asyncio.wait_for(watching, 10)

        assert cut >= WAVES * PER_WAVE // 2, f"only {cut} calls were really cut mid-way"
        assert statuses, "the bystander never got an answer"
        assert set(statuses) == {200}, sorted(set(statuses))
        assert max(latencies) < BYSTANDER_BOUND, f"a bystander waited {max(latencies):.2f}s"
        # The session whose calls were cut still serves its owner, and so does a fresh call.
        whoami = {
            "jsonrpc": "2.0",
            "id": 9999,
            "method": "tools/call",
            "params": {"name": "whoami", "arguments": {}},
        }
        answer = await http.post(url, json=whoami, headers=legacy_headers(token, session))
        assert structured(rpc_result(answer))["subject"] == "demo"
        assert (await http.get(f"{cluster.url(0)}/readyz")).status_code == 200

    errors = [
        line
        for line in cluster.log_text().splitlines()
        if line.startswith("{") and json.loads(line).get("level") in ("ERROR", "CRITICAL")
    ]
    assert not errors, "\n".join(errors[:5])
