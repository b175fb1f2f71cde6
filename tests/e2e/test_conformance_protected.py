"""The official conformance server suite against the OAuth-PROTECTED server, in both modes and stores.

scripts/conformance.sh runs the suite against AUTH_MODE=none. Here the same suite (`--suite all`,
both protocol revisions) runs against the server as deployed, with authentication on, in both modes
(internal: the AS in the MCP process; external: `python -m auth_server` beside it, the MCP server
introspecting every token) and on both stores (memory, Redis), as internal-memory and external-redis
(`EACH_MODE_AND_STORE`): a token is minted by the real flow (discovery, DCR, PKCE, our login and
consent pages, the token endpoint) and scripts/inject-auth.mjs, a Node preload, adds it to every
request the suite makes. The conformance engineer's baseline of expected failures
(tests/conformance/expected-failures.yml), when there is one, applies here too: the suite then also
fails on a listed scenario that passes.
The scenarios of the tasks extension (`tasks-*`), which `--suite all` leaves out, run by name
with the same token: every task they create belongs to that token's user and client.
"""

from __future__ import annotations

import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.e2e import oauth_flow
from tests.e2e.fixtures import EACH_MODE_AND_STORE
from tests.e2e.node_tools import TOOLS_NODE_MODULES, node_env, tool
from tests.e2e.servers import REPO_ROOT, Deployment

INJECT_AUTH = REPO_ROOT / "scripts" / "inject-auth.mjs"
EXPECTED_FAILURES = REPO_ROOT / "tests" / "conformance" / "expected-failures.yml"
SUITE_TIMEOUT = 240
SCENARIO_TIMEOUT = 120
TASK_SCENARIO = re.compile(r"^\s*- (tasks-[a-z-]+) \[extension\]", re.MULTILINE)
# An HTTP 401 in the suite's output; not the digits of a timestamp (`19:09:09.401Z`) or a port.
UNAUTHORIZED = re.compile(r"(?<![\d.])401(?!\d)")


def suite_env(tmp_path: Path, deployment: Deployment, bearer_token: str) -> dict[str, str]:
    """The suite's environment: Node 22, and every request it makes carrying the token."""
    return node_env(
        tmp_path,
        NODE_OPTIONS=f"--import {INJECT_AUTH}",
        MCP_BEARER_TOKEN=bearer_token,
        MCP_BEARER_ORIGIN=deployment.base_url,
        MCP_TOOLS_NODE_MODULES=str(TOOLS_NODE_MODULES),
    )


def run_suite(
    command: list[str], env: dict[str, str], cwd: Path, timeout: int
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def bearer_token(deployment: Deployment) -> str:
    """A token for demo with every scope the server knows, minted through the real pages."""
    discovery = oauth_flow.discover(deployment.mcp_url)
    every_scope = " ".join(discovery.metadata["scopes_supported"])
    grant = oauth_flow.mint(deployment.mcp_url, scope=every_scope)
    assert grant.authorization.saw_login
    assert grant.authorization.saw_consent
    granted = set(grant.tokens.scope.split())
    assert granted >= set(every_scope.split()), f"asked for {every_scope}, got {grant.tokens.scope}"
    return grant.tokens.access_token


@pytest.mark.parametrize("spec_version", ["2025-11-25", "2026-07-28"])
@pytest.mark.parametrize("deployment", EACH_MODE_AND_STORE, indirect=True)
def test_conformance_server_suite_passes_against_the_protected_server_with_a_real_token(
    deployment: Deployment, bearer_token: str, spec_version: str, tmp_path: Path
) -> None:
    # Without the token the server refuses the suite outright: the run below is authenticated.
    assert oauth_flow.initialize(deployment.mcp_url, None).status_code == 401

    command = [str(tool("conformance")), "server", "--url", deployment.mcp_url, "--suite", "all"]
    command += ["--spec-version", spec_version, "-o", str(tmp_path / "results")]
    if EXPECTED_FAILURES.exists():
        command += ["--expected-failures", str(EXPECTED_FAILURES)]
    done = run_suite(command, suite_env(tmp_path, deployment, bearer_token), tmp_path, SUITE_TIMEOUT)
    output = done.stdout + done.stderr
    summary = output[output.find("=== SUMMARY ===") :] if "=== SUMMARY ===" in output else output[-6000:]
    assert done.returncode == 0, summary
    assert "=== SUMMARY ===" in output
    # Every scenario ran authenticated: the server never answered the suite with a 401.
    assert not UNAUTHORIZED.search(summary), summary


@pytest.mark.parametrize("deployment", EACH_MODE_AND_STORE, indirect=True)
def test_every_tasks_extension_scenario_passes_against_the_protected_server(
    deployment: Deployment, bearer_token: str, tmp_path: Path
) -> None:
    env = suite_env(tmp_path, deployment, bearer_token)
    listed = subprocess.run(
        [str(tool("conformance")), "list", "--server"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    scenarios = TASK_SCENARIO.findall(listed)
    assert len(scenarios) >= 10, listed  # the ten of 0.2.0-alpha.12, and any the suite adds

    def run(scenario: str) -> tuple[str, int, str]:
        command = [str(tool("conformance")), "server", "--url", deployment.mcp_url, "--scenario", scenario]
        command += ["-o", str(tmp_path / scenario)]
        done = run_suite(command, env, tmp_path, SCENARIO_TIMEOUT)
        return scenario, done.returncode, done.stdout + done.stderr

    with ThreadPoolExecutor(max_workers=2) as pool:  # two at a time: the machine has two cores
        outcomes = list(pool.map(run, scenarios))
    failures = {scenario: output[-3000:] for scenario, code, output in outcomes if code != 0}
    assert not failures, failures
    for scenario, _, output in outcomes:
        assert "0 failed" in output, (scenario, output[-3000:])
        assert not UNAUTHORIZED.search(output), (scenario, output[-3000:])
