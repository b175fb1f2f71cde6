"""Calling a tool past its scope: one JSON-RPC body read two ways.

`ScopeCheck` parses the body to decide which tool is called and the SDK parses it again to run
it. Any disagreement between the two parsers (a key given twice, a name spelled with JSON
escapes) would let a token with read scopes run a tool that needs `notes:write`. Each attack uses
a real token with the baseline (read) scopes, minted through the real pages, against real server
processes in both modes and on both stores (internal-memory, external-redis), and checks that
nothing was written.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx2
import pytest

from tests.e2e.fixtures import EACH_MODE_AND_STORE
from tests.e2e.oauth_flow import mint
from tests.e2e.servers import Deployment
from tests.resilience.cluster import modern_call, rpc_result, structured

# Real processes in each mode once and each store once (internal-memory, external-redis): both body parsers
# are the MCP server's, whichever mode or store.
PROCESS_DEPLOYMENTS = EACH_MODE_AND_STORE

READ_SCOPES = "mcp:tools:read notes:read"
META = json.dumps(modern_call("whoami")[0]["params"]["_meta"])
ADD = '"name":"notes_add","arguments":{"text":"written past the scope check"}'
WHOAMI = '"name":"whoami","arguments":{}'

CALL = '"method":"tools/call"'

# The members after `"jsonrpc"` and `"id"` of bodies whose reading decides between whoami
# (allowed) and notes_add (needs notes:write).
SMUGGLED = {
    "tool named twice, the write last": f'{CALL},"params":{{{WHOAMI},{ADD},"_meta":{META}}}',
    "params given twice, the write last": (
        f'{CALL},"params":{{{WHOAMI},"_meta":{META}}},"params":{{{ADD},"_meta":{META}}}'
    ),
    "method given twice, the call last": f'"method":"tools/list",{CALL},"params":{{{ADD},"_meta":{META}}}',
    "tool name spelled with a JSON escape": (
        CALL + ',"params":{"name":"notes\\u005fadd","arguments":{"text":"escaped"},"_meta":' + META + "}"
    ),
}


def rpc(members: str) -> bytes:
    """A JSON-RPC request: `members` follow its jsonrpc and id."""
    body = '{"jsonrpc":"2.0","id":7,' + members + "}"
    json.loads(body)  # well-formed JSON: the attack is in the reading, not a parse error
    return body.encode()


@pytest.fixture(scope="module")
def reader(deployment: Deployment) -> str:
    token = mint(deployment.mcp_url, scope=READ_SCOPES).tokens.access_token
    assert token
    return token


@pytest.fixture
def http() -> Iterator[httpx2.Client]:
    with httpx2.Client(timeout=15.0, trust_env=False) as client:
        yield client


def notes_of(http: httpx2.Client, deployment: Deployment, token: str) -> list[object]:
    body, headers = modern_call("notes_list", {}, token)
    notes: list[object] = structured(rpc_result(http.post(deployment.mcp_url, json=body, headers=headers)))[
        "notes"
    ]
    return notes


@pytest.mark.parametrize("attack", list(SMUGGLED))
@pytest.mark.parametrize("named_in_header", ["whoami", "notes_add"])
def test_a_write_tool_smuggled_past_the_scope_check_is_refused(
    deployment: Deployment, reader: str, http: httpx2.Client, attack: str, named_in_header: str
) -> None:
    headers = {**modern_call(named_in_header, {}, reader)[1]}
    response = http.post(deployment.mcp_url, content=rpc(SMUGGLED[attack]), headers=headers)

    assert response.status_code == 403, response.text
    assert "notes:write" in response.headers["www-authenticate"]
    assert notes_of(http, deployment, reader) == []


def test_a_tool_named_twice_runs_the_tool_the_scope_check_allowed(
    deployment: Deployment, reader: str, http: httpx2.Client
) -> None:
    """The mirror image: the write first, whoami last. Both parsers take the last key, so the
    check allows whoami and whoami is what runs; the note is never written."""
    body = rpc(f'{CALL},"params":{{{ADD},{WHOAMI},"_meta":{META}}}')
    response = http.post(deployment.mcp_url, content=body, headers=modern_call("whoami", {}, reader)[1])

    assert structured(rpc_result(response))["subject"] == "demo"
    assert notes_of(http, deployment, reader) == []
