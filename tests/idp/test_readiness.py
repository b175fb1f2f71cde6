"""/readyz reflects a provider the server cannot use (issue 15, item 6), against oidc-provider.

Two processes depend on a provider's metadata: the MCP server in external mode (AUTH_SERVER_URL:
it finds the provider's keys and introspection endpoint there) and our authorization server with
federated login (UPSTREAM_OIDC_ISSUER: where users sign in), standalone or inside the MCP server
in internal mode. While that metadata cannot be fetched, or names another issuer than the one
configured, nothing can be checked or nobody can sign in: /readyz answers 503 with a reason that
names the setting (so a load balancer takes the instance out and the operator knows what to
fix), the log says more, and /readyz becomes 200 by itself once the provider answers correctly.
(Anyone can call /readyz, so a broken provider is not asked once per call:
tests/security/test_readiness_probes.py.)
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx2

from tests.e2e.servers import Deployment, ServerProcess, build_deployment, free_port
from tests.idp.conftest import mcp_server_alone
from tests.idp.provider import IdentityProvider, start_provider

UPSTREAM_CLIENT = {
    "UPSTREAM_OIDC_CLIENT_ID": "mcp-reference-as",
    "UPSTREAM_OIDC_CLIENT_SECRET": "a-long-enough-upstream-client-secret",
}
READY_WITHIN = 30.0  # the servers retry discovery every 5 s; a busy machine may take longer


def readyz(base_url: str) -> httpx2.Response:
    return httpx2.get(f"{base_url}/readyz", timeout=15.0, trust_env=False)


def wait_until_ready(base_url: str) -> httpx2.Response:
    deadline = time.monotonic() + READY_WITHIN
    while (answer := readyz(base_url)).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    return answer


def auth_server_process(workdir: Path, env: dict[str, str]) -> tuple[ServerProcess, str]:
    """`python -m auth_server` alone (the first process of an external deployment), and its URL."""
    deployment = build_deployment("external", "memory", workdir, env=env)
    (process,) = [p for p in deployment.processes if p.name == "auth_server"]
    return process, deployment.issuer


def trusting_another_spelling(workdir: Path, provider: IdentityProvider) -> tuple[Deployment, Deployment]:
    """The MCP server trusting `provider` for tokens, and an internal-mode server whose users
    sign in there, both with its issuer spelled with a trailing slash (as Auth0 spells its own):
    its metadata names the issuer without one, so byte for byte it is another issuer, and nothing
    it says is trusted. Not started."""
    spelled = provider.issuer + "/"
    mcp = mcp_server_alone(workdir / "mcp", {"AUTH_SERVER_URL": spelled})
    federated = build_deployment(
        "internal", "memory", workdir / "federated", env={"UPSTREAM_OIDC_ISSUER": spelled, **UPSTREAM_CLIENT}
    )
    return mcp, federated


def test_a_provider_that_does_not_answer_makes_readyz_503_naming_the_setting_until_it_does(
    tmp_path: Path,
) -> None:
    # The provider's port is held (bound, not listening: connections are refused) until it starts,
    # so that nothing else on the machine is given it meanwhile.
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    port = held.getsockname()[1]
    issuer = f"http://127.0.0.1:{port}"
    mcp = mcp_server_alone(tmp_path / "mcp", {"AUTH_SERVER_URL": issuer})
    auth, auth_url = auth_server_process(tmp_path / "as", {"UPSTREAM_OIDC_ISSUER": issuer, **UPSTREAM_CLIENT})
    provider = None
    try:
        mcp.start()
        auth.start()
        for base_url, setting in ((mcp.base_url, "AUTH_SERVER_URL"), (auth_url, "UPSTREAM_OIDC_ISSUER")):
            answer = readyz(base_url)
            assert answer.status_code == 503, (base_url, answer.text)
            assert answer.json()["status"] == "unavailable"
            assert setting in answer.json()["reason"], answer.json()
        assert "UPSTREAM_OIDC_ISSUER" in next(
            line for line in auth.log_tail().splitlines() if "upstream metadata at" in line
        )

        held.close()
        provider = start_provider(tmp_path / "provider", port, resources={mcp.mcp_url: {"format": "jwt"}})
        for base_url in (mcp.base_url, auth_url):
            answer = wait_until_ready(base_url)
            assert answer.status_code == 200, (base_url, answer.text, mcp.logs(), auth.log_tail())
            assert answer.json() == {"status": "ready"}
    finally:
        held.close()
        auth.stop()
        mcp.stop()
        if provider is not None:
            provider.stop()


def test_a_provider_publishing_another_issuer_makes_readyz_503_naming_the_setting(tmp_path: Path) -> None:
    provider = start_provider(tmp_path / "provider", free_port(), resources={}, rfc8414=False)
    mcp, federated = trusting_another_spelling(tmp_path, provider)
    try:
        mcp.start()
        federated.start()
        expected = {
            mcp.base_url: ("AUTH_SERVER_URL", "set AUTH_SERVER_URL to exactly the issuer"),
            federated.base_url: ("UPSTREAM_OIDC_ISSUER", "set UPSTREAM_OIDC_ISSUER to exactly the issuer"),
        }
        for base_url, (setting, _) in expected.items():
            answer = readyz(base_url)
            assert answer.status_code == 503, (base_url, answer.text)
            assert f"names another issuer than {setting}" in answer.json()["reason"], answer.json()
        for deployment, (_, advice) in zip((mcp, federated), expected.values(), strict=True):
            assert advice in deployment.logs()
    finally:
        federated.stop()
        mcp.stop()
        provider.stop()
