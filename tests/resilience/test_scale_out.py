"""Scale-out: several MCP server processes on one Redis, with no sticky routing.

Two clusters, each two `python -m mcp_server` instances sharing one Redis (one key prefix) and
one public URL:
- external: plus `python -m auth_server`; the instances validate by introspection and run
  MCP_SESSION_MODE=stateless, so 2025-11-25 clients need no affinity either;
- internal: each instance carries the authorization server itself (any instance can log a user
  in, issue, refresh and revoke), TOKEN_FORMAT=jwt signed with the key kept in Redis, and the
  default stateful 2025 sessions, which live in one process (hence: sticky routing, or stateless).

`RoundRobin` is the load balancer: every request goes to the next instance, so consecutive
requests of one client, one OAuth flow or one multi-round-trip tool call land on different
processes.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp.client.session import ClientRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import (
    CreateMessageRequestParams,
    CreateMessageResult,
    ElicitRequestParams,
    ElicitResult,
    TextContent,
)

from tests.fixtures.redis_server import RedisServer
from tests.resilience.cluster import (
    ACCEPT,
    LEGACY,
    MODERN,
    TIMEOUT,
    Cluster,
    RoundRobin,
    build_cluster,
    call,
    http_client,
    mint,
    modern_call,
    rpc_result,
    running,
    sdk_client,
    structured,
    token_request,
)

pytestmark = pytest.mark.timeout(90)

CLUSTERS = ["external_cluster", "internal_cluster"]


@pytest.fixture(scope="module")
def external_cluster(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    cluster = build_cluster(
        "external",
        Path(tmp_path_factory.mktemp("scale-external")),
        redis_url=redis_server.url,
        env={"MCP_SESSION_MODE": "stateless"},
    )
    with running(cluster):
        yield cluster


@pytest.fixture(scope="module")
def internal_cluster(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    cluster = build_cluster(
        "internal",
        Path(tmp_path_factory.mktemp("scale-internal")),
        redis_url=redis_server.url,
        env={"TOKEN_FORMAT": "jwt"},
    )
    with running(cluster):
        yield cluster


def direct_mint(cluster: Cluster) -> Any:
    with http_client() as http:
        return mint(cluster, http)


async def accept(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
    return ElicitResult(action="accept", content={"ok": True})


async def answer(context: ClientRequestContext, params: CreateMessageRequestParams) -> CreateMessageResult:
    return CreateMessageResult(role="assistant", content=TextContent(type="text", text="42"), model="test")


def text_of(result: Any) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


async def test_every_instance_publishes_the_same_jwt_signing_key_kept_in_redis(
    internal_cluster: Cluster,
) -> None:
    async with httpx2.AsyncClient(timeout=TIMEOUT, trust_env=False) as http:
        # Both at once: on a fresh Redis the first writer's key must win on both instances.
        answers = await asyncio.gather(
            *(http.get(f"{internal_cluster.url(i)}/jwks") for i in (0, 1, 0, 1, 0, 1))
        )
    documents = [a.json() for a in answers]
    assert all(a.status_code == 200 for a in answers)
    assert all(d == documents[0] for d in documents), documents
    assert len(documents[0]["keys"]) == 1


@pytest.mark.parametrize("which", CLUSTERS)
async def test_a_token_minted_through_alternating_instances_works_on_every_instance(
    which: str, request: pytest.FixtureRequest
) -> None:
    cluster: Cluster = request.getfixturevalue(which)
    balancer = RoundRobin(cluster)
    with http_client(balancer.transport()) as http:
        minted = mint(cluster, http)
        if cluster.mode == "internal":
            # Discovery, registration, /authorize, login, consent and /token crossed both instances:
            # pending requests, login sessions, CSRF tokens and codes all live in Redis.
            assert min(balancer.served.values()) >= 3, balancer.served
            assert minted.access_token.count(".") == 2, "TOKEN_FORMAT=jwt issues JWTs"
        refreshed = token_request(
            http,
            minted.metadata,
            {
                "grant_type": "refresh_token",
                "refresh_token": str(minted.refresh_token),
                "client_id": minted.client_id,
            },
        )
        assert refreshed.status_code == 200, refreshed.text
    async with httpx2.AsyncClient(timeout=TIMEOUT, trust_env=False) as client:
        for token in (minted.access_token, refreshed.json()["access_token"]):
            for index in range(len(cluster.ports)):
                who = structured(await call(client, f"{cluster.url(index)}/mcp", token, "whoami"))
                assert who["subject"] == "demo", who


@pytest.mark.parametrize("which", CLUSTERS)
async def test_notes_written_on_one_instance_are_read_and_deleted_on_the_other(
    which: str, request: pytest.FixtureRequest
) -> None:
    cluster: Cluster = request.getfixturevalue(which)
    token = direct_mint(cluster).access_token
    async with httpx2.AsyncClient(timeout=TIMEOUT, trust_env=False) as http:
        a, b = f"{cluster.url(0)}/mcp", f"{cluster.url(1)}/mcp"
        note = structured(await call(http, a, token, "notes_add", text=f"written on A ({which})"))
        listed = structured(await call(http, b, token, "notes_list"))
        assert note["id"] in [n["id"] for n in listed["notes"]]
        assert structured(await call(http, b, token, "notes_delete", note_id=note["id"]))["deleted"] is True
        listed = structured(await call(http, a, token, "notes_list"))
        assert note["id"] not in [n["id"] for n in listed["notes"]]


@pytest.mark.parametrize("which", CLUSTERS)
async def test_2026_requests_alternate_between_instances_with_the_sdk_client(
    which: str, request: pytest.FixtureRequest
) -> None:
    cluster: Cluster = request.getfixturevalue(which)
    token = direct_mint(cluster).access_token
    balancer = RoundRobin(cluster)
    async with sdk_client(
        cluster.mcp_url, token, MODERN, balancer.async_transport(), elicitation_callback=accept
    ) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"whoami", "notes_add", "notes_list"} <= names
        for _ in range(6):
            who = await client.call_tool("whoami", {})
            assert not who.is_error, who
            assert (who.structured_content or {}).get("subject") == "demo", who
        added = await client.call_tool("notes_add", {"text": "via the balancer"})
        listed = await client.call_tool("notes_list", {})
        assert (added.structured_content or {})["id"] in text_of(listed) + str(listed.structured_content)
        before = len(balancer.routed)
        # A multi-round-trip call: the server seals requestState on one instance and the client's
        # retry carries it to the next; REQUEST_STATE_KEYS is the same on both.
        confirmed = await client.call_tool("test_input_required_result_request_state", {})
        assert "state-ok" in text_of(confirmed), text_of(confirmed)
    rounds = [
        index
        for index, name in balancer.routed[before:]
        if name == "test_input_required_result_request_state"
    ]
    assert len(set(rounds)) == 2, f"the retry did not cross instances: {rounds}"
    assert min(balancer.served[i] for i in range(len(cluster.ports))) >= 5, balancer.served


async def test_2025_sessions_in_stateless_mode_alternate_between_instances_with_the_sdk_client(
    external_cluster: Cluster,
) -> None:
    token = direct_mint(external_cluster).access_token
    balancer = RoundRobin(external_cluster)
    async with sdk_client(
        external_cluster.mcp_url, token, LEGACY, balancer.async_transport(), sampling_callback=answer
    ) as client:
        assert client.session is not None
        for _ in range(4):
            who = await client.call_tool("whoami", {})
            assert (who.structured_content or {}).get("subject") == "demo", who
        resources = (await client.list_resources()).resources
        assert resources, "resources/list works without a session"
        read = await client.read_resource(resources[0].uri)
        assert read.contents
        prompts = (await client.list_prompts()).prompts
        assert prompts, "prompts/list works without a session"
        simple = next(p for p in prompts if not p.arguments)
        assert (await client.get_prompt(simple.name, {})).messages
        # What stateless 2025 cannot do: a server-to-client request (sampling) has no channel back.
        # It fails fast with an error that says so; it does not hang.
        with pytest.raises(MCPError, match="back-channel"):
            await asyncio.wait_for(client.call_tool("test_sampling", {"prompt": "2+2?"}), 10)
    assert min(balancer.served[i] for i in range(2)) >= 4, balancer.served


async def test_a_stateful_2025_session_lives_only_on_the_instance_that_opened_it(
    internal_cluster: Cluster,
) -> None:
    """Why stateful mode needs sticky routing on Mcp-Session-Id (docs/operations.md)."""
    token = direct_mint(internal_cluster).access_token
    headers = {
        "accept": ACCEPT,
        "content-type": "application/json",
        "mcp-protocol-version": LEGACY,
        "authorization": f"Bearer {token}",
    }
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": LEGACY,
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    whoami = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "whoami", "arguments": {}},
    }
    a, b = f"{internal_cluster.url(0)}/mcp", f"{internal_cluster.url(1)}/mcp"
    async with httpx2.AsyncClient(timeout=TIMEOUT, trust_env=False) as http:
        opened = await http.post(a, json=initialize, headers=headers)
        assert opened.status_code == 200, opened.text
        session = {**headers, "mcp-session-id": opened.headers["mcp-session-id"]}
        initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert (await http.post(a, json=initialized, headers=session)).status_code == 202
        elsewhere = await http.post(b, json=whoami, headers=session)
        assert elsewhere.status_code == 404, elsewhere.text
        at_home = await http.post(a, json=whoami, headers=session)
        assert structured(rpc_result(at_home))["subject"] == "demo"


async def test_a_token_revoked_through_one_instance_is_refused_by_the_other_at_once(
    internal_cluster: Cluster,
) -> None:
    minted = direct_mint(internal_cluster)
    b = f"{internal_cluster.url(1)}/mcp"
    async with httpx2.AsyncClient(timeout=TIMEOUT, trust_env=False) as http:
        assert structured(await call(http, b, minted.access_token, "whoami"))["subject"] == "demo"
        revoked = await http.post(
            f"{internal_cluster.url(0)}/revoke",
            data={"token": minted.access_token, "client_id": minted.client_id},
        )
        assert revoked.status_code == 200, revoked.text
        body, headers = modern_call("whoami", {}, minted.access_token)
        refused = await http.post(b, json=body, headers=headers)
        assert refused.status_code == 401, refused.text


async def test_the_request_id_follows_an_introspection_call_to_the_auth_server(
    external_cluster: Cluster,
) -> None:
    token = direct_mint(external_cluster).access_token  # never presented yet: not in any cache
    request_id = f"follow-me-{uuid.uuid4().hex[:8]}"
    body, headers = modern_call("whoami", {}, token)
    async with httpx2.AsyncClient(timeout=TIMEOUT, trust_env=False) as http:
        answer = await http.post(
            f"{external_cluster.url(1)}/mcp", json=body, headers={**headers, "x-request-id": request_id}
        )
    assert structured(rpc_result(answer))["subject"] == "demo"
    assert answer.headers["x-request-id"] == request_id
    assert external_cluster.auth is not None
    deadline = time.monotonic() + 5
    while True:  # the AS writes its access-log line as it answers; give the file a moment
        lines = [json.loads(line) for line in external_cluster.auth.log_path.read_text().splitlines() if line]
        introspections = [line for line in lines if "/introspect" in str(line["message"])]
        if (
            any(line.get("request_id") == request_id for line in introspections)
            or time.monotonic() > deadline
        ):
            break
        await asyncio.sleep(0.05)
    assert any(line.get("request_id") == request_id for line in introspections), introspections[-3:]
