"""An API key never acts as a user.

The attack: an operator configures an API key for a service and names its subject like a user
("demo", or a colleague's sign-in name); or whoever holds that key does. Per-user data is keyed
by subject, so the key read and wrote the user's notebook (and tasks), and the user read what
the key wrote. Now an API key's principal is `api-key:<subject>`, a namespace AUTH_USERS refuses
for user names: the key has a notebook of its own. The real processes, both modes (in external
mode the MCP server checks the key itself, the user's token through the authorization server).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest

from shared.validators.api_keys import api_key_digest
from tests.e2e import oauth_flow
from tests.e2e.fixtures import BOTH_MODES_MEMORY
from tests.e2e.servers import Deployment, build_deployment
from tests.fixtures.tasks_client import TaskClient

KEY = "key-named-like-the-demo-user-0123456789abcdef"
DEPLOYMENT_ENV = {
    "API_KEYS": json.dumps(
        [{"sha256": api_key_digest(KEY), "subject": "demo", "scopes": ["mcp:tools:read", "notes:write"]}]
    )
}


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(timeout=30, trust_env=False) as client:
        yield client


@pytest.mark.parametrize("deployment", BOTH_MODES_MEMORY, indirect=True)
async def test_an_api_key_named_like_a_user_has_its_own_notebook(
    deployment: Deployment, http: httpx2.AsyncClient
) -> None:
    grant = await asyncio.to_thread(oauth_flow.mint, deployment.mcp_url, scope="mcp:tools:read notes:write")
    user = TaskClient(http, deployment.mcp_url, grant.tokens.access_token)
    key = TaskClient(http, deployment.mcp_url, KEY)
    await user.call("notes_add", text="the user's private note")

    seen = (await key.call("notes_list"))["structuredContent"]
    assert seen["owner"] == "api-key:demo"
    assert "the user's private note" not in [note["text"] for note in seen["notes"]]
    await key.call("notes_add", text="written with the key")
    mine = (await user.call("notes_list"))["structuredContent"]
    assert mine["owner"] == "demo"
    assert "written with the key" not in [note["text"] for note in mine["notes"]]
    assert (await key.call("whoami"))["structuredContent"]["subject"] == "api-key:demo"


def test_a_user_name_in_the_api_key_namespace_is_refused_at_start(tmp_path: Path) -> None:
    users = json.dumps({"api-key:demo": "$scrypt$ln=10,r=8,p=1$c2FsdA$" + "A" * 43})
    (process,) = build_deployment("internal", "memory", tmp_path, env={"AUTH_USERS": users}).processes
    code, output = process.run_expecting_refusal()
    assert code != 0
    assert "must not start with 'api-key:'" in output
