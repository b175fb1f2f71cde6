"""RS-14..RS-16: per-operation scopes, one step-up challenge, hierarchy; both protocol revisions."""

from __future__ import annotations

import json

import pytest
from mcp.server.mcpserver import MCPServer

from mcp_server.features.kit import WRITES, Tools
from mcp_server.protection.scopes import ScopePolicy
from shared.scopes import NOTES_READ, NOTES_WRITE, PROMPTS_READ, RESOURCES_READ, TOOLS_READ
from tests.integration.rs.conftest import API_KEYS, FORGEABLE_KINDS, LEGACY, MODERN, Mcp, Rs, legacy_headers
from tests.integration.rs.test_protected_resource_metadata import challenge_params


def assert_step_up(rs: Rs, status: int, header: str, wanted: str) -> None:
    assert status == 403
    params = challenge_params(header)
    assert params["error"] == "insufficient_scope"
    assert params["scope"] == wanted
    assert params["resource_metadata"] == f"{rs.url}/.well-known/oauth-protected-resource/mcp"
    assert params["error_description"]


async def test_a_write_tool_called_with_read_scopes_gets_403_naming_all_it_needs_and_holds(
    rs: Rs, mcp: Mcp
) -> None:
    token = await rs.token("alice", [TOOLS_READ, NOTES_READ])
    response = await mcp.post("tools/call", {"name": "notes_add", "arguments": {"text": "x"}}, token)
    assert_step_up(
        rs,
        response.status_code,
        response.headers["www-authenticate"],
        "mcp:tools:read notes:read notes:write",
    )
    assert response.json()["error"] == "insufficient_scope"


async def test_after_stepping_up_the_same_call_succeeds(rs: Rs, mcp: Mcp) -> None:
    token = await rs.token("alice", [TOOLS_READ, NOTES_READ, NOTES_WRITE])
    note = await mcp.call_tool("notes_add", token, text="after step-up")
    assert note["structuredContent"]["text"] == "after step-up"


async def test_a_broader_scope_satisfies_a_narrower_one(rs: Rs, mcp: Mcp) -> None:
    token = await rs.token("alice", [NOTES_WRITE])
    listed = await mcp.call_tool("notes_list", token)
    assert listed["isError"] is False


@pytest.mark.parametrize(
    ("method", "params", "needs"),
    [
        ("tools/list", None, TOOLS_READ),
        ("tools/call", {"name": "whoami", "arguments": {}}, TOOLS_READ),
        ("tools/call", {"name": "no_such_tool", "arguments": {}}, TOOLS_READ),
        ("tools/call", {"name": "notes_list", "arguments": {}}, NOTES_READ),
        ("resources/list", None, RESOURCES_READ),
        ("resources/templates/list", None, RESOURCES_READ),
        ("resources/read", {"uri": "test://static-text"}, RESOURCES_READ),
        ("prompts/list", None, PROMPTS_READ),
        ("prompts/get", {"name": "test_simple_prompt"}, PROMPTS_READ),
        (
            "completion/complete",
            {
                "ref": {"type": "ref/prompt", "name": "test_prompt_with_arguments"},
                "argument": {"name": "arg1", "value": "a"},
            },
            PROMPTS_READ,
        ),
    ],
)
async def test_each_operation_needs_its_scope(
    rs: Rs, mcp: Mcp, method: str, params: dict | None, needs: str
) -> None:  # type: ignore[type-arg]
    without = await rs.token(
        "alice", [s for s in (TOOLS_READ, RESOURCES_READ, PROMPTS_READ, NOTES_READ) if s != needs]
    )
    denied = await mcp.post(method, params, without)
    assert denied.status_code == 403, denied.text
    assert needs in challenge_params(denied.headers["www-authenticate"])["scope"].split()
    with_it = await rs.token("bob", [needs])
    allowed = await mcp.post(method, params, with_it)
    assert allowed.status_code == 200, allowed.text


@pytest.mark.parametrize("rs", FORGEABLE_KINDS, indirect=True)  # the real AS always grants a scope
async def test_a_token_without_scopes_can_still_initialize_ping_and_discover(rs: Rs) -> None:
    token = await rs.token("alice", [])
    session = await Mcp(rs.http, LEGACY).session(token)
    ping = await rs.http.post(
        "/mcp", json={"jsonrpc": "2.0", "id": 9, "method": "ping"}, headers=legacy_headers(token, session)
    )
    assert ping.status_code == 200
    discover = await Mcp(rs.http, MODERN).post("server/discover", None, token)
    assert discover.status_code == 200, discover.text


async def test_a_batch_needing_two_missing_scopes_names_both_in_one_challenge(rs: Rs) -> None:
    token = await rs.token("alice", [PROMPTS_READ])
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 2, "method": "resources/list"},
    ]
    headers = {**legacy_headers(token), "mcp-protocol-version": "2025-03-26"}
    response = await rs.http.post("/mcp", content=json.dumps(batch).encode(), headers=headers)
    assert_step_up(
        rs,
        response.status_code,
        response.headers["www-authenticate"],
        "mcp:tools:read mcp:resources:read mcp:prompts:read",
    )


async def test_the_body_decides_not_the_mcp_name_header(rs: Rs) -> None:
    token = await rs.token("alice", [TOOLS_READ, NOTES_READ])
    response = await Mcp(rs.http, MODERN).post(
        "tools/call", {"name": "notes_add", "arguments": {"text": "x"}}, token, headers={"mcp-name": "whoami"}
    )
    assert response.status_code == 403


async def test_tools_list_shows_every_tool_including_those_the_token_cannot_call(rs: Rs, mcp: Mcp) -> None:
    token = await rs.token("alice", [TOOLS_READ])
    names = {tool["name"] for tool in (await mcp.result("tools/list", None, token))["tools"]}
    assert {"whoami", "notes_list", "notes_add", "notes_delete"} <= names


async def test_api_key_scopes_are_enforced_like_token_scopes(rs: Rs, mcp: Mcp) -> None:
    denied = await mcp.post("tools/list", None, API_KEYS["nobody"])
    assert denied.status_code == 403
    assert challenge_params(denied.headers["www-authenticate"])["scope"] == TOOLS_READ
    write = await mcp.post("tools/call", {"name": "notes_add", "arguments": {"text": "x"}}, API_KEYS["alice"])
    assert write.status_code == 403


def test_a_tool_declares_its_scopes_where_it_is_registered_and_the_policy_asks_for_them() -> None:
    tools = Tools(MCPServer("scopes"))

    @tools.add(scopes=[NOTES_WRITE, RESOURCES_READ], annotations=WRITES)
    async def both() -> None:
        """Needs two scopes."""

    policy = ScopePolicy(tools.required_scopes)
    assert policy.required({"method": "tools/call", "params": {"name": "both"}}) == {
        NOTES_WRITE,
        RESOURCES_READ,
    }
    assert policy.required({"method": "tools/call", "params": {"name": "other"}}) == {TOOLS_READ}
    assert policy.required({"method": "notifications/initialized"}) == frozenset()
    assert policy.required({"jsonrpc": "2.0", "id": 1, "result": {}}) == frozenset()
    listen = {
        "method": "subscriptions/listen",
        "params": {"notifications": {"resourceSubscriptions": ["test://x"]}},
    }
    assert policy.required(listen) == {RESOURCES_READ}
