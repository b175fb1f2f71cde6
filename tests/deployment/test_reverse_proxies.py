"""docs/deployment.md's nginx and Caddy configurations in front of the real servers, in both modes.

Each stack is what the page builds: the servers on loopback with production settings (a real user
with an argon2id hash, secrets of 32+ characters, https public URLs, FORWARDED_ALLOW_IPS=127.0.0.1,
Redis), so they pass the start-up check, and the proxy terminating TLS with a throwaway
certificate whose CA only the clients here trust. Through it: the MCP SDK's own OAuth client signs
in and calls tools over both protocol revisions; a 2025-11-25 SSE stream carries a server-to-client
request (what `proxy_buffering off` is for); every client is its own address for the rate limits,
whatever it writes into X-Forwarded-For; /metrics and plain http stay out.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import ElicitRequestParams, ElicitResult

from auth_server.users import hash_password
from tests.deployment.proxies import (
    AUTH_NAME,
    DEV_AUTH_UPSTREAM,
    DEV_MCP_UPSTREAM,
    MCP_NAME,
    Certificate,
    Proxy,
    ProxyKind,
    Routes,
    throwaway_certificate,
)
from tests.e2e.sdk_client import HeadlessUser, make_sdk_client, subject_of, text_of
from tests.e2e.servers import Deployment, Mode, build_deployment
from tests.fixtures.launch import free_port
from tests.fixtures.redis_server import RedisServer

ALICE = ("alice", secrets.token_urlsafe(16))
RATE_LIMIT = 20  # per client address and endpoint, a minute: small enough to reach in a test
STACKS = [
    pytest.param(("nginx", "internal"), id="nginx-internal"),
    pytest.param(("nginx", "external"), id="nginx-external"),
    pytest.param(("caddy", "internal"), id="caddy-internal"),
    pytest.param(("caddy", "external"), id="caddy-external"),
]


@dataclass
class Stack:
    kind: ProxyKind
    mode: Mode
    routes: Routes
    certificate: Certificate
    deployment: Deployment
    proxy: Proxy

    @property
    def public_mcp(self) -> str:
        return self.routes.public_url(MCP_NAME)

    @property
    def issuer(self) -> str:
        return self.routes.public_url(AUTH_NAME if self.mode == "external" else MCP_NAME)

    def client(self, **kwargs: Any) -> httpx2.Client:
        """A plain HTTPS client that trusts the throwaway CA (from 127.0.0.1 unless told otherwise)."""
        address = kwargs.pop("local_address", None)
        transport = httpx2.HTTPTransport(verify=self.certificate.client_context(), local_address=address)
        return httpx2.Client(transport=transport, timeout=15.0, trust_env=False, **kwargs)


def production_settings(mode: Mode, routes: Routes) -> dict[str, str]:
    """The settings docs/deployment.md writes into /etc/mcp-reference-server/.env, for this stack."""
    env = {
        "MCP_PUBLIC_URL": routes.public_url(MCP_NAME),
        "FORWARDED_ALLOW_IPS": "127.0.0.1",
        "AUTH_USERS": json.dumps({ALICE[0]: hash_password(ALICE[1])}),
        "REQUEST_STATE_KEYS": secrets.token_urlsafe(32),
        "RATE_LIMIT_PER_MINUTE": str(RATE_LIMIT),
    }
    if mode == "external":
        env["AUTH_ISSUER_URL"] = routes.public_url(AUTH_NAME)
    return env


@pytest.fixture(scope="module", params=STACKS)
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    kind, mode = request.param
    redis: RedisServer = request.getfixturevalue("e2e_redis")
    workdir = Path(tmp_path_factory.mktemp(f"{kind}-{mode}"))
    certificate = throwaway_certificate(workdir / "tls")
    names = [MCP_NAME, AUTH_NAME] if mode == "external" else [MCP_NAME]
    listen = {name: free_port() for name in names}
    routes = Routes(listen, {}, free_port())
    deployment = build_deployment(
        mode, "redis", workdir / "servers", redis_url=redis.url, env=production_settings(mode, routes)
    )
    upstream = {DEV_MCP_UPSTREAM: deployment.mcp_port}
    if deployment.auth_port is not None:
        upstream[DEV_AUTH_UPSTREAM] = deployment.auth_port
        # The MCP server reaches the authorization server on loopback, past the proxy (the page's
        # AUTH_SERVER_URL); both processes share one environment, as they share one .env there.
        deployment.processes[0].env["AUTH_SERVER_URL"] = f"http://127.0.0.1:{deployment.auth_port}"
    routes = Routes(listen, upstream, routes.http_port)
    proxy = Proxy(kind, routes, certificate, workdir / "proxy")
    deployment.start()
    try:
        proxy.start()
        yield Stack(kind, mode, routes, certificate, deployment, proxy)
    finally:
        proxy.stop()
        deployment.stop()


def test_the_servers_pass_the_start_up_check_and_announce_the_public_https_url(stack: Stack) -> None:
    logs = stack.deployment.logs()
    assert f"Connect your MCP client to {stack.public_mcp}/mcp" in logs, logs
    assert "demo" not in logs, logs
    assert "development" not in logs.lower(), logs
    with stack.client() as http:
        prm = http.get(f"{stack.public_mcp}/.well-known/oauth-protected-resource/mcp")
        assert prm.status_code == 200, prm.text
        assert prm.json()["resource"] == f"{stack.public_mcp}/mcp"
        assert prm.json()["authorization_servers"] == [stack.issuer]
        assert http.get(f"{stack.public_mcp}/readyz").status_code == 200


async def test_the_sdk_client_signs_in_through_the_proxy_and_calls_tools_in_both_revisions(
    stack: Stack,
) -> None:
    user = HeadlessUser(*ALICE, verify=stack.certificate.client_context())
    sdk = make_sdk_client(f"{stack.public_mcp}/mcp", user)
    async with sdk.connect("2025-11-25") as client:
        assert "whoami" in {tool.name for tool in (await client.list_tools()).tools}
        assert subject_of(await client.call_tool("whoami", {})) == "alice"
    async with sdk.connect("2026-07-28") as client:
        assert subject_of(await client.call_tool("whoami", {})) == "alice"
    assert user.logins == 1, "the second connection should reuse the token"
    public = tuple(stack.routes.public_url(name) for name in stack.routes.listen)
    elsewhere = [url for _, url, _ in sdk.traffic.exchanges if not url.startswith(public)]
    assert not elsewhere, f"the client was sent past the proxy: {elsewhere}"
    assert {url.split("?")[0] for url in user.authorization_urls} == {f"{stack.issuer}/authorize"}


async def accept(context: object, params: ElicitRequestParams) -> ElicitResult:
    return ElicitResult(action="accept", content={"username": "alice", "email": "alice@example.com"})


async def test_a_server_request_on_a_2025_sse_stream_reaches_the_client_through_the_proxy(
    stack: Stack,
) -> None:
    """test_elicitation answers only after the client answers an elicitation/create sent on the
    call's SSE stream: a proxy holding that event back would leave the call waiting forever."""
    user = HeadlessUser(*ALICE, verify=stack.certificate.client_context())
    sdk = make_sdk_client(f"{stack.public_mcp}/mcp", user)
    http = httpx2.AsyncClient(
        auth=sdk.provider, timeout=httpx2.Timeout(30.0), trust_env=False, verify=user.verify
    )
    async with http:
        transport = streamable_http_client(sdk.mcp_url, http_client=http)
        async with Client(transport, mode="legacy", elicitation_callback=accept) as client:
            with anyio.fail_after(30):
                result = await client.call_tool("test_elicitation", {"message": "Who are you?"})
    assert "action=accept" in text_of(result), text_of(result)
    assert "alice@example.com" in text_of(result), text_of(result)


def test_each_client_is_its_own_address_behind_the_proxy_whatever_it_forwards(stack: Stack) -> None:
    revoke = f"{stack.issuer}/revoke"
    junk = {"token": "not-a-token", "client_id": "nobody"}
    with stack.client(local_address="127.0.0.2") as first, stack.client(local_address="127.0.0.3") as second:
        statuses = [first.post(revoke, data=junk).status_code for _ in range(RATE_LIMIT)]
        assert 429 not in statuses, statuses
        assert first.post(revoke, data=junk).status_code == 429
        forged = first.post(revoke, data=junk, headers={"x-forwarded-for": "203.0.113.7"})
        assert forged.status_code == 429, "a forged X-Forwarded-For bought a fresh bucket"
        forged = first.post(revoke, data=junk, headers={"forwarded": "for=203.0.113.8"})
        assert forged.status_code == 429, "a forged Forwarded header bought a fresh bucket"
        other = second.post(revoke, data=junk)
        assert other.status_code != 429, "another client shares the first one's bucket: the proxy's"


def test_the_proxy_keeps_metrics_and_plain_http_out_and_sends_hsts(stack: Stack) -> None:
    with stack.client() as http:
        for name in stack.routes.listen:
            assert http.get(f"{stack.routes.public_url(name)}/metrics").status_code == 404
        healthz = http.get(f"{stack.public_mcp}/healthz")
        assert healthz.status_code == 200
        assert healthz.headers["strict-transport-security"].startswith("max-age="), healthz.headers
    with httpx2.Client(trust_env=False, timeout=15.0) as plain:
        direct = plain.get(f"{stack.deployment.base_url}/metrics")
        assert direct.status_code == 200, "scraping the server itself on loopback must still work"
        if stack.kind == "nginx":  # Caddy's own redirect is not under test (its redirects are off here)
            redirect = plain.get(f"http://127.0.0.1:{stack.routes.http_port}/mcp")
            assert redirect.status_code == 301
            assert redirect.headers["location"].startswith("https://"), redirect.headers
