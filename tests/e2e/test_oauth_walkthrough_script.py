"""scripts/test-oauth.sh, the curl walkthrough in the docs, passes against the real servers."""

from __future__ import annotations

import subprocess

import pytest

from tests.e2e.fixtures import EACH_MODE_AND_STORE
from tests.e2e.node_tools import VENV_BIN
from tests.e2e.servers import REPO_ROOT, Deployment, clean_environ

SCRIPT = REPO_ROOT / "scripts" / "test-oauth.sh"
DEPLOYMENT_ENV = {"INTROSPECTION_CACHE_TTL": "1", "INTROSPECTION_NEGATIVE_TTL": "1"}
STEPS = [
    "1. Call the MCP endpoint without a token",
    "2. Protected resource metadata",
    "3. Authorization server metadata",
    "4. Register a client",
    "5. Authorize",
    "6. Exchange the code for tokens",
    "7. Call a tool with the access token",
    "8. Refresh the access token",
    "9. Call the tool with the new access token",
    "10. Revoke the access token",
    "11. Call again with the revoked token",
]


def script_env(**extra: str) -> dict[str, str]:
    env = clean_environ(extra)
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"  # python3 for the script's JSON/HTML helpers
    return env


@pytest.mark.parametrize("deployment", EACH_MODE_AND_STORE, indirect=True)
def test_curl_walkthrough_script_completes_every_step(deployment: Deployment) -> None:
    done = subprocess.run(
        ["bash", str(SCRIPT), deployment.base_url],
        env=script_env(REVOCATION_WAIT="5"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    for step in STEPS:
        assert f"== {step}" in output, f"missing step {step!r}:\n{output}"
    assert "All 11 steps passed." in output
    assert "whoami: subject=demo " in output


def test_curl_walkthrough_script_fails_loudly_when_no_server_answers() -> None:
    done = subprocess.run(
        ["bash", str(SCRIPT), "http://127.0.0.1:9"],
        env=script_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "All 11 steps passed." not in done.stdout
