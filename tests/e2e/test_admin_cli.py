"""The admin CLI (`python -m auth_server admin ...`) against the real server processes, both modes,
both stores: what an operator types, with the same settings as the servers, and what an MCP client
then sees at /mcp.

The CLI finds the server from the settings (AUTH_MODE, MCP_PORT or AUTH_PORT, HOST) and reads its
token from ADMIN_TOKEN; the servers know only the digest (ADMIN_TOKEN_SHA256). Introspection is
not cached here (INTROSPECTION_CACHE_TTL=0) so that external mode's MCP server sees revocations on
the next request, as internal mode's does.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from auth_server.admin.credentials import new_admin_token
from tests.e2e.fixtures import EACH_MODE_AND_STORE
from tests.e2e.oauth_flow import initialize, mint, refresh
from tests.e2e.servers import PYTHON, Deployment, Mode, StoreKind, clean_environ

ADMIN_TOKEN, ADMIN_DIGEST = new_admin_token()
DEPLOYMENT_ENV = {
    "ADMIN_TOKEN_SHA256": json.dumps([ADMIN_DIGEST]),
    "INTROSPECTION_CACHE_TTL": "0",
}
CLI_TIMEOUT = 60


def admin_cli(
    deployment: Deployment, *args: str, token: str | None = ADMIN_TOKEN
) -> subprocess.CompletedProcess[str]:
    """Run the CLI as an operator on the servers' host would: their settings, plus the token."""
    env = {**deployment.env, **({"ADMIN_TOKEN": token} if token is not None else {})}
    return subprocess.run(
        [PYTHON, "-m", "auth_server", "admin", *args],
        env=clean_environ(env),
        cwd=deployment.workdir,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )


def answer(deployment: Deployment, *args: str) -> Any:
    done = admin_cli(deployment, *args)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return json.loads(done.stdout)


@pytest.mark.parametrize("deployment", EACH_MODE_AND_STORE, indirect=True)
def test_the_cli_finds_a_users_grant_revokes_it_and_its_tokens_stop_at_the_mcp_server(
    deployment: Deployment,
) -> None:
    minted = mint(deployment.mcp_url)
    assert initialize(deployment.mcp_url, minted.tokens.access_token).status_code == 200
    client_id = minted.client.client_id

    listed = [c["client_id"] for c in answer(deployment, "clients", "list")["clients"]]
    shown = answer(deployment, "clients", "show", client_id)
    grants = answer(deployment, "grants", "list", "--user", "demo")["grants"]

    assert client_id in listed
    assert shown["users"] == ["demo"]
    assert shown["grants"] == 1
    assert client_id in [g["client_id"] for g in grants]

    ended = answer(deployment, "grants", "revoke", "--user", "demo", "--client", client_id)

    assert ended == {"grants": 1, "live_tokens": 2}
    assert initialize(deployment.mcp_url, minted.tokens.access_token).status_code == 401
    with pytest.raises(AssertionError, match="invalid_grant"):
        refresh(minted.discovery, minted.client, str(minted.tokens.refresh_token), deployment.mcp_url)


@pytest.mark.parametrize("deployment", EACH_MODE_AND_STORE, indirect=True)
def test_a_client_disabled_from_the_cli_is_locked_out_at_once_and_enabled_again(
    deployment: Deployment,
) -> None:
    minted = mint(deployment.mcp_url)
    client_id = minted.client.client_id

    disabled = answer(deployment, "clients", "disable", client_id)

    assert disabled["disabled"] is True
    assert disabled["ended"]["grants"] == 1
    assert initialize(deployment.mcp_url, minted.tokens.access_token).status_code == 401
    with pytest.raises(AssertionError, match="invalid_client"):
        refresh(minted.discovery, minted.client, str(minted.tokens.refresh_token), deployment.mcp_url)
    assert answer(deployment, "clients", "enable", client_id)["disabled"] is False
    assert answer(deployment, "clients", "show", client_id)["disabled"] is False


@pytest.mark.parametrize("deployment", EACH_MODE_AND_STORE, indirect=True)
def test_the_cli_deletes_a_registration_and_purges(deployment: Deployment) -> None:
    minted = mint(deployment.mcp_url)
    deleted = answer(deployment, "clients", "delete", minted.client.client_id)
    assert deleted["deleted"] is True
    assert initialize(deployment.mcp_url, minted.tokens.access_token).status_code == 401

    purged = answer(deployment, "purge")

    assert purged["pages"] >= 1
    assert purged["clients_checked"] >= 1
    assert {"expired_removed", "index_entries_pruned", "grant_token_entries_pruned"} <= set(purged)


@pytest.mark.parametrize("deployment", EACH_MODE_AND_STORE, indirect=True)
def test_rotating_the_signing_key_with_opaque_tokens_is_refused_with_the_reason(
    deployment: Deployment,
) -> None:
    done = admin_cli(deployment, "keys", "rotate")
    assert done.returncode == 1
    assert "409 conflict" in done.stderr
    assert "opaque" in done.stderr


# Both modes and both stores in two deployments (tests/integration/auth covers all four in process).
@pytest.mark.parametrize(
    ("mode", "store"),
    [("internal", "memory"), ("external", "redis")],
    ids=["internal-memory", "external-redis"],
)
def test_the_cli_rotates_the_jwt_signing_key_in_both_modes_and_stores(
    mode: Mode, store: StoreKind, start_deployment: Callable[..., Deployment]
) -> None:
    jwt = start_deployment(mode, store, {**DEPLOYMENT_ENV, "TOKEN_FORMAT": "jwt"})
    before = mint(jwt.mcp_url)
    (old,) = answer(jwt, "keys", "list")["keys"]

    rotated = answer(jwt, "keys", "rotate")

    assert rotated["kid"] != old["kid"]
    assert [k["kid"] for k in rotated["keys"]] == [rotated["kid"], old["kid"]]
    after = mint(jwt.mcp_url)
    assert _kid(after.tokens.access_token) == rotated["kid"]
    assert initialize(jwt.mcp_url, after.tokens.access_token).status_code == 200
    assert initialize(jwt.mcp_url, before.tokens.access_token).status_code == 200, (
        "the old key still verifies"
    )


@pytest.mark.parametrize("deployment", EACH_MODE_AND_STORE, indirect=True)
def test_a_wrong_or_missing_token_changes_nothing_and_the_token_is_never_logged(
    deployment: Deployment,
) -> None:
    minted = mint(deployment.mcp_url)
    wrong = admin_cli(deployment, "clients", "disable", minted.client.client_id, token=new_admin_token()[0])
    missing = admin_cli(deployment, "clients", "list", token=None)

    assert wrong.returncode == 1
    assert "401 invalid_token" in wrong.stderr
    assert missing.returncode == 1
    assert "ADMIN_TOKEN" in missing.stderr
    assert initialize(deployment.mcp_url, minted.tokens.access_token).status_code == 200
    logs = "\n".join(p.log_path.read_text(errors="replace") for p in deployment.processes)
    assert "admin_auth_failed" in logs, "the failure is audited"
    assert ADMIN_TOKEN not in logs
    assert ADMIN_TOKEN not in wrong.stdout + wrong.stderr


def test_the_cli_says_so_when_the_server_has_no_admin_api(
    start_deployment: Callable[..., Deployment],
) -> None:
    bare = start_deployment("internal", "memory", {})
    done = admin_cli(bare, "clients", "list")
    assert done.returncode == 1
    assert "ADMIN_TOKEN_SHA256" in done.stderr


def _kid(token: str) -> str:
    header = token.split(".")[0]
    kid: str = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]
    return kid
