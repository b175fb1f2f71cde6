"""One principal cannot hold every session (issue 9 item 7, sessions part).

The attack: one signed-in user (any valid token) sends `initialize` in a loop. Before the fix the
SDK's only limit was its global cap (10,000 sessions per process; reproduced: one token opened all
10,000 in 88 s), after which everyone else got 503 "Too many open sessions" until the attacker's
sessions idled out, 30 minutes later. The deprecated HTTP+SSE transport had no limit at all (one
token held 1,500 /sse streams, +118 MB and 1,500 file descriptors, and would have held more). Now
each user holds at most MCP_MAX_SESSIONS_PER_PRINCIPAL (default 100) sessions of both transports
together, whatever client they use; one more is 429 with Retry-After, and everyone else still gets
in. Real server processes in both modes (sessions live in the MCP process, so the store does not
matter), with small numbers: 3 per user, 7 in all.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest

from auth_server.users import hash_password
from tests.e2e.oauth_flow import LEGACY_VERSION, initialize, mint
from tests.e2e.servers import Deployment

PER_PRINCIPAL = 3
GLOBAL = 7
USERS = {"alice": "alice-password-1", "bob": "bob-password-12", "carol": "carol-password-1"}


@pytest.fixture(params=["internal", "external"])
def server(request: pytest.FixtureRequest, start_deployment: Callable[..., Deployment]) -> Deployment:
    env = {
        "AUTH_USERS": json.dumps({name: hash_password(password) for name, password in USERS.items()}),
        "MCP_MAX_SESSIONS": str(GLOBAL),
        "MCP_MAX_SESSIONS_PER_PRINCIPAL": str(PER_PRINCIPAL),
    }
    return start_deployment(request.param, "memory", env)


def token_of(server: Deployment, user: str) -> str:
    """A token for `user` through the real flow, from a client registered for it alone."""
    return mint(server.mcp_url, scope="mcp:tools:read", user=(user, USERS[user])).tokens.access_token


def headers(token: str, session: str | None = None) -> dict[str, str]:
    values = {
        "authorization": f"Bearer {token}",
        "accept": "application/json, text/event-stream",
        "content-type": "application/json",
        "mcp-protocol-version": LEGACY_VERSION,
    }
    if session is not None:
        values["mcp-session-id"] = session
    return values


def open_session(server: Deployment, token: str) -> httpx2.Response:
    return initialize(server.mcp_url, token)


def open_until_refused(
    server: Deployment, token: str, attempts: int = 10
) -> tuple[list[str], httpx2.Response]:
    sessions: list[str] = []
    for _ in range(attempts):
        response = open_session(server, token)
        if response.status_code != 200:
            return sessions, response
        sessions.append(response.headers["mcp-session-id"])
    raise AssertionError(f"{attempts} sessions opened, none refused")


def still_works(server: Deployment, token: str, session: str) -> bool:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": 7, "method": "tools/list"}
    with httpx2.Client(timeout=10, trust_env=False) as client:
        return client.post(server.mcp_url, json=body, headers=headers(token, session)).status_code == 200


def end(server: Deployment, token: str, session: str) -> None:
    with httpx2.Client(timeout=10, trust_env=False) as client:
        assert client.delete(server.mcp_url, headers=headers(token, session)).status_code in (200, 204)


def test_one_user_cannot_hold_every_session(server: Deployment) -> None:
    alice, bob = token_of(server, "alice"), token_of(server, "bob")

    held, refused = open_until_refused(server, alice)

    assert len(held) == PER_PRINCIPAL
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0
    error = refused.json()["error"]
    assert "Too many open sessions for this user" in error["message"]
    assert open_session(server, bob).status_code == 200  # everyone else still gets in
    assert all(still_works(server, alice, session) for session in held)  # and alice keeps hers


def test_another_client_of_the_same_user_gets_no_more_sessions(server: Deployment) -> None:
    first, second = token_of(server, "alice"), token_of(server, "alice")  # two registered clients
    held, _ = open_until_refused(server, first)
    assert len(held) == PER_PRINCIPAL
    assert open_session(server, second).status_code == 429


def test_ending_a_session_gives_its_place_back(server: Deployment) -> None:
    alice = token_of(server, "alice")
    held, _ = open_until_refused(server, alice)
    end(server, alice, held[0])
    assert open_session(server, alice).status_code == 200
    assert open_session(server, alice).status_code == 429


def test_initializes_that_fail_take_no_place(server: Deployment) -> None:
    alice = token_of(server, "alice")
    # Without a session id the SDK admits a session for any request, and discards it again when
    # the request that opened it is refused (only initialize may open one).
    not_an_initialize = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    with httpx2.Client(timeout=10, trust_env=False) as client:
        for _ in range(PER_PRINCIPAL + 2):
            response = client.post(server.mcp_url, json=not_an_initialize, headers=headers(alice))
            assert response.status_code == 400, response.text
    held, refused = open_until_refused(server, alice)
    assert len(held) == PER_PRINCIPAL
    assert refused.status_code == 429


def test_the_global_cap_still_holds_behind_the_quota(server: Deployment) -> None:
    tokens = {user: token_of(server, user) for user in USERS}
    for user in ("alice", "bob"):
        held, _ = open_until_refused(server, tokens[user])
        assert len(held) == PER_PRINCIPAL
    assert GLOBAL == 2 * PER_PRINCIPAL + 1
    assert open_session(server, tokens["carol"]).status_code == 200  # the last place in the process
    refused = open_session(server, tokens["carol"])
    assert refused.status_code == 503  # carol holds 1 of her 3: it is the global cap that answers


@contextlib.contextmanager
def sse_streams(server: Deployment, token: str, count: int) -> Iterator[list[int]]:
    """Open `count` /sse streams with `token` and hold them for the with-block; their statuses."""
    with httpx2.Client(timeout=10, trust_env=False) as client:
        opened = []
        try:
            for _ in range(count):
                request = client.build_request(
                    "GET", f"{server.base_url}/sse", headers={"authorization": f"Bearer {token}"}
                )
                opened.append(client.send(request, stream=True))
            yield [response.status_code for response in opened]
        finally:
            for response in opened:
                response.close()


def test_one_user_cannot_hold_every_legacy_sse_stream(server: Deployment) -> None:
    alice, bob = token_of(server, "alice"), token_of(server, "bob")
    with sse_streams(server, alice, PER_PRINCIPAL + 2) as statuses:
        assert statuses == [200] * PER_PRINCIPAL + [429, 429]
        with sse_streams(server, bob, 1) as others:
            assert others == [200]
    with sse_streams(server, alice, 1) as again:  # closing its streams gave alice her places back
        assert again == [200]


def test_both_transports_count_against_one_quota(server: Deployment) -> None:
    alice = token_of(server, "alice")
    assert open_session(server, alice).status_code == 200
    with sse_streams(server, alice, PER_PRINCIPAL) as statuses:
        assert statuses == [200] * (PER_PRINCIPAL - 1) + [429]
        assert open_session(server, alice).status_code == 429
