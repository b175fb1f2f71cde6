"""What one request can make the servers write to their logs.

The attack: a 1 MB tool name in tools/call (also a method name, a resource URI, a prompt name, a
JSON-RPC id). The MCP SDK logs "Tool '<name>' not listed" at INFO, a failed prompts/get with its
traceback at ERROR, and at DEBUG the whole response: 2 MB of log per request, from any caller with
a token, and a 1 MB line no log collector wants. Also the sign-in page's user name (audit line)
and /register's refusal reason, which anonymous callers reach. Now every record is bounded by the
log handler (shared/logs.py: MAX_MESSAGE_CHARS for a message, MAX_TRACEBACK_LINE_CHARS for each
traceback line), audit fields by the audit log; the text format escapes control characters, so a
client's newline cannot forge a line. The real server processes, both modes, at DEBUG (everything
the SDK logs), the log files read as written.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx2
import pytest

from shared.logs import MAX_MESSAGE_CHARS
from tests.e2e import oauth_flow
from tests.e2e.fixtures import BOTH_MODES_MEMORY
from tests.e2e.servers import Deployment

both_modes = pytest.mark.parametrize("deployment", BOTH_MODES_MEMORY, indirect=True)

DEPLOYMENT_ENV = {"LOG_LEVEL": "DEBUG", "LOG_FORMAT": "json"}
BIG = "A" * 1_000_000
# Per line: the message, and for a line with a traceback its frames, each line bounded (the JSON
# formatter writes them into one line). Per attack: far below the megabyte sent.
LONGEST_LINE = 4 * MAX_MESSAGE_CHARS
MOST_PER_ATTACK = 16 * MAX_MESSAGE_CHARS
LEGACY = "2025-11-25"


def log_size(deployment: Deployment) -> int:
    return sum(process.log_path.stat().st_size for process in deployment.processes)


def log_since(deployment: Deployment, sizes: list[int]) -> list[str]:
    lines: list[str] = []
    for process, start in zip(deployment.processes, sizes, strict=True):
        with process.log_path.open("rb") as log:
            log.seek(start)
            lines += log.read().decode(errors="replace").splitlines()
    return lines


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(timeout=60, trust_env=False) as client:
        yield client


async def legacy_session(deployment: Deployment, http: httpx2.AsyncClient, *, scope: str) -> dict[str, str]:
    """Headers of a 2025-11-25 session of the demo user with `scope`."""
    grant = await asyncio.to_thread(oauth_flow.mint, deployment.mcp_url, scope=scope)
    headers = oauth_flow.mcp_headers(grant.tokens.access_token, LEGACY)
    init = await http.post(
        deployment.mcp_url,
        headers=headers,
        json=oauth_flow.initialize_request(LEGACY, name="t", id=0),
    )
    assert init.status_code == 200, init.text
    headers["mcp-session-id"] = init.headers["mcp-session-id"]
    await http.post(
        deployment.mcp_url, headers=headers, json={"jsonrpc": "2.0", "method": "notifications/initialized"}
    )
    return headers


@pytest.fixture
async def session(deployment: Deployment, http: httpx2.AsyncClient) -> dict[str, str]:
    every_scope = " ".join(oauth_flow.discover(deployment.mcp_url).metadata["scopes_supported"])
    return await legacy_session(deployment, http, scope=every_scope)


def assert_bounded(deployment: Deployment, sizes: list[int], attack: str) -> None:
    lines = log_since(deployment, sizes)
    written = log_size(deployment) - sum(sizes)
    assert written < MOST_PER_ATTACK, f"{attack}: {written} bytes of log"
    longest = max((len(line) for line in lines), default=0)
    assert longest < LONGEST_LINE, f"{attack}: a line of {longest} characters"


ATTACKS: dict[str, dict[str, Any]] = {
    "tool name": {"method": "tools/call", "params": {"name": BIG, "arguments": {}}},
    "method name": {"method": BIG, "params": {}},
    "resource uri": {"method": "resources/read", "params": {"uri": "x://" + BIG}},
    "prompt name": {"method": "prompts/get", "params": {"name": BIG}},
    "request id": {"method": "tools/list", "params": {}, "id": BIG},
}


@both_modes
@pytest.mark.parametrize("attack", list(ATTACKS))
async def test_a_megabyte_in_a_request_writes_a_bounded_log(
    deployment: Deployment, http: httpx2.AsyncClient, session: dict[str, str], attack: str
) -> None:
    sizes = [process.log_path.stat().st_size for process in deployment.processes]
    body = {"jsonrpc": "2.0", "id": 1, **ATTACKS[attack]}
    response = await http.post(deployment.mcp_url, headers=session, json=body)
    assert response.status_code in (200, 400), response.text[:300]
    assert_bounded(deployment, sizes, attack)


@both_modes
async def test_a_megabyte_user_name_and_registration_write_a_bounded_log(
    deployment: Deployment, http: httpx2.AsyncClient
) -> None:
    sizes = [process.log_path.stat().st_size for process in deployment.processes]
    refused = await http.post(
        f"{deployment.issuer}/register",
        json={"redirect_uris": ["http://127.0.0.1/cb"], "scope": BIG[:15_000]},
    )
    assert refused.status_code == 400
    login = await http.post(
        f"{deployment.issuer}/login", data={"username": BIG[:15_000], "password": "x", "request": "r"}
    )
    assert login.status_code < 500
    assert_bounded(deployment, sizes, "register and login")


async def test_a_newline_in_a_notification_name_cannot_forge_a_text_log_line(
    start_deployment: Callable[..., Deployment], http: httpx2.AsyncClient
) -> None:
    """The SDK logs an unknown notification's method with %s (not %r) at DEBUG."""
    deployment = start_deployment("internal", env={"LOG_FORMAT": "text", "LOG_LEVEL": "DEBUG"})
    headers = await legacy_session(deployment, http, scope="mcp:tools:read")
    forged = "2026-01-01T00:00:00.000Z CRITICAL auth_server.audit admin signed in from 10.0.0.1"
    sent = await http.post(
        deployment.mcp_url,
        headers=headers,
        json={"jsonrpc": "2.0", "method": f"notifications/x\n{forged}\r\n{forged}\u2028{forged}"},
    )
    assert sent.status_code == 202
    log = deployment.processes[-1]
    deadline = time.monotonic() + 10
    while "no handler for notification notifications/x" not in log.log_path.read_text():
        assert time.monotonic() < deadline, "the SDK never logged the notification"
        await asyncio.sleep(0.05)
    text = log.log_path.read_text()
    assert "notifications/x\\x0a2026-01-01" in text  # on one line, the newline escaped
    assert not any(line.startswith(forged) for line in text.splitlines())
