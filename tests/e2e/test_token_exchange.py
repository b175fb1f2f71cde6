"""Token exchange, no passthrough (RFC 8693), end to end: a tool calls a downstream API for the
signed-in user with a token made for that API.

Three real processes per mode (internal: the MCP server with its authorization server; external:
both servers apart) plus the demo downstream API (`python -m downstream`) as its own process. The
MCP SDK's own OAuth client signs in as a person would, steps up to `profile:read` when the tool
asks for it, and calls `downstream_profile`; the MCP server exchanges the caller's token (in
process, or at /token as its delegation credential) and calls the API, which accepts only tokens
whose audience is itself and whose `act` names the MCP server. The answer proves which token
reached the API; the API refusing the caller's own token proves that token could not have.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest

from tests.e2e.fixtures import BOTH_MODES_MEMORY
from tests.e2e.oauth_flow import mint
from tests.e2e.sdk_client import REVISIONS, HeadlessUser, Revision, make_sdk_client, structured
from tests.e2e.servers import PYTHON, Deployment, ServerProcess, build_deployment, free_port

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


@dataclass
class World:
    deployment: Deployment
    api_url: str
    api: ServerProcess


@pytest.fixture(scope="module", params=BOTH_MODES_MEMORY)
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    mode, store = request.param
    workdir = Path(tmp_path_factory.mktemp(f"exchange-{mode}"))
    api_url = f"http://127.0.0.1:{free_port()}"
    env = {
        "TOKEN_EXCHANGE_AUDIENCES": api_url,
        "DOWNSTREAM_API_URL": api_url,
        "TOKEN_EXCHANGE_CLIENT_SECRET": secrets.token_urlsafe(32),
    }
    deployment = build_deployment(mode, store, workdir, env=env)
    api = ServerProcess(
        "downstream",
        [PYTHON, "-m", "downstream"],
        deployment.processes[-1].env,
        f"{api_url}/healthz",
        workdir,
    )
    deployment.processes.append(api)  # started after the servers, stopped before them
    deployment.start()
    try:
        yield World(deployment, api_url, api)
    finally:
        deployment.stop()


@pytest.mark.parametrize("revision", REVISIONS)
async def test_a_tool_reads_the_downstream_api_for_the_signed_in_user(
    world: World, revision: Revision
) -> None:
    user = HeadlessUser()
    sdk = make_sdk_client(world.deployment.mcp_url, user)
    async with sdk.connect(revision) as client:
        # A first call with the baseline scope: on 2026-07-28 the SDK steps up on a 403 only for a
        # request that did not itself just complete a 401 sign-in.
        assert not (await client.call_tool("whoami", {})).is_error
        result = await client.call_tool("downstream_profile", {})
    assert not result.is_error, result
    profile = structured(result)
    assert profile["subject"] == "demo"
    assert profile["actor"] == world.deployment.mcp_url  # act: the MCP server acting for the user
    assert profile["client_id"] == "mcp-server-delegate"
    assert profile["scope"] == "profile:read"
    assert profile["audience"] == [world.api_url]
    # The tool needed profile:read, which the first sign-in did not grant: one step-up.
    assert "profile:read" in user.requested()["scope"].split()


def test_the_api_refuses_the_callers_own_token(world: World) -> None:
    """What passthrough would send: the MCP token (audience: the MCP server) is not for the API."""
    token = mint(world.deployment.mcp_url, scope="mcp:tools:read profile:read").tokens.access_token
    with httpx2.Client(trust_env=False, timeout=10.0) as http:
        response = http.get(f"{world.api_url}/v1/profile", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_token"


def test_every_exchange_is_audited(world: World) -> None:
    log = "\n".join(process.log_tail(200_000) for process in world.deployment.processes[:-1])
    audit = [json.loads(line).get("audit") for line in log.splitlines() if line.startswith("{")]
    exchanges = [
        event
        for event in audit
        if isinstance(event, dict)
        and event.get("event") == "token_issued"
        and event.get("grant_type") == TOKEN_EXCHANGE
    ]
    assert exchanges, "no token exchange was audited"
    for event in exchanges:
        assert event["client_id"] == "mcp-server-delegate"
        assert event["resource"] == world.api_url
        assert event["scope"] == "profile:read"
        assert event["subject"] == "demo"


def test_in_internal_mode_no_client_can_exchange_at_the_token_endpoint(world: World) -> None:
    with httpx2.Client(trust_env=False, timeout=10.0) as http:
        metadata = http.get(f"{world.deployment.issuer}/.well-known/oauth-authorization-server").json()
        response = http.post(
            f"{world.deployment.issuer}/token",
            data={"grant_type": TOKEN_EXCHANGE, "subject_token": "x", "subject_token_type": "x"},
        )
    served = TOKEN_EXCHANGE in metadata["grant_types_supported"]
    if world.deployment.mode == "internal":
        assert not served
        assert response.json()["error"] == "unsupported_grant_type"
    else:
        assert served
        assert response.status_code == 401  # only the delegation credential, authenticated
