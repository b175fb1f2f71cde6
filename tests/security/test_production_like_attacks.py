"""The adversarial pass against a production-like deployment: public https names, Redis, and no
development default (a configured user, long secrets), so the start-up check lets it serve.

The servers listen on 127.0.0.1 as docs/deployment.md has them behind a TLS proxy; here the test
is that proxy (`ActingProxy`): https://mcp.example.com and https://auth.example.com go to their
loopback ports as plain http with `X-Forwarded-Proto: https` and the client's address in
`X-Forwarded-For`, which FORWARDED_ALLOW_IPS=127.0.0.1 believes. Each attack of the pass that
reaches the servers the same way in production runs here too, as an anonymous caller, a
registered client or a signed-in user; each also runs against the development deployments in its
own module. And what holds only here: the sign-in cookie is out of reach of other ports (a
development issuer on plain http cannot have that, docs/security.md).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from redis import Redis

from auth_server.users import scrypt_hash
from tests.e2e import oauth_flow
from tests.e2e.servers import Deployment, Mode, build_deployment
from tests.fixtures.redis_server import RedisServer
from tests.integration.auth.flow_helpers import (
    authorize_params,
    callback_dict,
    exchange_code,
    new_pkce,
    register,
    run_flow,
)
from tests.security.test_event_stream_attacks import progress_call, resume, sse_events
from tests.security.test_slow_clients import closed_after
from tests.security.test_token_oracles import UNKNOWN, visible

MCP_NAME = "mcp.example.com"
AUTH_NAME = "auth.example.com"
PASSWORD = "correct horse battery staple"
LIMIT = 8
LEGACY = "2025-11-25"


class ActingProxy(httpx2.AsyncBaseTransport):
    """A TLS-terminating reverse proxy, as far as the servers can tell: the public name's request
    to its loopback port, plain http, forwarded headers set, the Host header kept."""

    def __init__(self, ports: dict[str, int], client_address: str) -> None:
        self._ports = ports
        self._client_address = client_address
        self._inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        public = request.url
        request.headers["x-forwarded-for"] = self._client_address
        request.headers["x-forwarded-proto"] = "https"
        request.url = public.copy_with(scheme="http", host="127.0.0.1", port=self._ports[public.host])
        try:
            return await self._inner.handle_async_request(request)
        finally:
            request.url = public  # cookies are the public name's (Secure, __Host-)

    async def aclose(self) -> None:
        await self._inner.aclose()


@dataclass
class Production:
    deployment: Deployment
    ports: dict[str, int]

    @property
    def issuer(self) -> str:
        return f"https://{AUTH_NAME if self.deployment.mode == 'external' else MCP_NAME}"

    @property
    def mcp_url(self) -> str:
        return f"https://{MCP_NAME}/mcp"

    def client(self, base_url: str | None = None) -> httpx2.AsyncClient:
        """A client of its own address (so of its own rate-limit buckets)."""
        address = f"198.51.100.{secrets.randbelow(250) + 1}"
        return httpx2.AsyncClient(
            base_url=base_url or self.issuer,
            transport=ActingProxy(self.ports, address),
            timeout=30,
            trust_env=False,
        )


@pytest.fixture(scope="module", params=["internal", "external"])
def production(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, e2e_redis: RedisServer
) -> Iterator[Production]:
    mode: Mode = request.param
    users = {name: scrypt_hash(PASSWORD, n=2**14) for name in ("alice", "bob")}
    env = {
        "MCP_PUBLIC_URL": f"https://{MCP_NAME}",
        "FORWARDED_ALLOW_IPS": "127.0.0.1",
        "AUTH_USERS": json.dumps(users),
        "REQUEST_STATE_KEYS": secrets.token_urlsafe(32),
        "RATE_LIMIT_PER_MINUTE": str(LIMIT),
    }
    if mode == "external":
        env["AUTH_ISSUER_URL"] = f"https://{AUTH_NAME}"
    workdir = Path(tmp_path_factory.mktemp(f"production-{mode}"))
    deployment = build_deployment(mode, "redis", workdir, redis_url=e2e_redis.url, env=env)
    ports = {MCP_NAME: deployment.mcp_port}
    if deployment.auth_port is not None:
        ports[AUTH_NAME] = deployment.auth_port
        deployment.processes[-1].env["AUTH_SERVER_URL"] = f"http://127.0.0.1:{deployment.auth_port}"
    deployment.start()
    try:
        assert "development" not in deployment.logs().lower(), deployment.logs()
        yield Production(deployment, ports)
    finally:
        deployment.stop()


@pytest.fixture
async def http(production: Production) -> AsyncIterator[httpx2.AsyncClient]:
    async with production.client() as client:
        yield client


async def signed_in_tokens(production: Production, user: str) -> tuple[dict[str, Any], str]:
    """A registered public client's tokens for `user` (the whole flow through the proxy)."""
    async with production.client() as browser:
        client_id = (await register(browser))["client_id"]
        pkce = new_pkce()
        params = authorize_params(client_id, pkce, resource=production.mcp_url, scope="mcp:tools:read")
        flow = await run_flow(browser, params, username=user, password=PASSWORD)
        code = callback_dict(flow.headers["location"])["code"]
        tokens = await exchange_code(browser, code, client_id, pkce, resource=production.mcp_url)
        assert tokens.status_code == 200, tokens.text
        return tokens.json(), client_id


def redis_keys(production: Production, pattern: str) -> dict[str, int]:
    """The deployment's keys matching `pattern`, with their TTLs."""
    redis = Redis.from_url(production.deployment.env["REDIS_URL"], decode_responses=True)
    prefix = production.deployment.env["REDIS_KEY_PREFIX"]
    try:
        return {key.removeprefix(prefix): redis.ttl(key) for key in redis.scan_iter(prefix + pattern)}
    finally:
        redis.close()


async def test_a_registration_loop_is_limited_per_client_address_and_kept_only_for_a_while(
    production: Production, http: httpx2.AsyncClient
) -> None:
    statuses = [
        (await http.post("/register", json={"redirect_uris": ["http://127.0.0.1/cb"]})).status_code
        for _ in range(3 * LIMIT)
    ]
    assert statuses == [201] * LIMIT + [429] * (2 * LIMIT)
    async with production.client() as elsewhere:  # another address has a bucket of its own
        response = await elsewhere.post("/register", json={"redirect_uris": ["http://127.0.0.1/cb"]})
        assert response.status_code == 201
    ttls = redis_keys(production, "auth:client:*").values()
    assert ttls
    assert all(0 < ttl <= 86_400 for ttl in ttls)  # none kept for good: no user authorized them


async def test_another_clients_live_tokens_answer_as_unknown_ones(production: Production) -> None:
    tokens, _ = await signed_in_tokens(production, "alice")
    async with production.client() as attacker:
        client_id = (await register(attacker))["client_id"]
        unknown = await attacker.post("/revoke", data={"token": UNKNOWN, "client_id": client_id})
        for token in (tokens["access_token"], tokens["refresh_token"]):
            live = await attacker.post("/revoke", data={"token": token, "client_id": client_id})
            assert visible(live) == visible(unknown)
        form = {"grant_type": "refresh_token", "client_id": client_id}
        unknown_refresh = await attacker.post("/token", data={**form, "refresh_token": UNKNOWN})
        live_refresh = await attacker.post("/token", data={**form, "refresh_token": tokens["refresh_token"]})
        assert visible(live_refresh) == visible(unknown_refresh)


async def test_resuming_a_stream_never_replays_another_users_events(production: Production) -> None:
    async def session(user: str) -> dict[str, str]:
        tokens, _ = await signed_in_tokens(production, user)
        headers = oauth_flow.mcp_headers(tokens["access_token"], LEGACY)
        init = await mcp.post(
            "/mcp", headers=headers, json=oauth_flow.initialize_request(LEGACY, name=user, id=0)
        )
        assert init.status_code == 200, init.text
        headers["mcp-session-id"] = init.headers["mcp-session-id"]
        return headers

    async def call(headers: dict[str, str], marker: str) -> list[dict[str, Any]]:
        response = await mcp.post("/mcp", headers=headers, json=progress_call(marker))
        assert response.headers["content-type"].startswith("text/event-stream"), response.text
        return sse_events(response.text)

    async with production.client(f"https://{MCP_NAME}") as mcp:
        bob, alice = await session("bob"), await session("alice")
        own = await call(bob, "bob's call")
        secret = f"alice's secret {secrets.token_hex(8)}"
        await call(alice, secret)
        for event in own:
            assert secret not in await resume(production.mcp_url, mcp, bob, event["id"])


async def test_slow_request_headers_get_the_connection_closed(production: Production) -> None:
    for port in production.ports.values():
        url = f"http://127.0.0.1:{port}"
        await closed_after(
            url, b"POST /token HTTP/1.1\r\nHost: " + AUTH_NAME.encode() + b"\r\n", trickle=b"X: 1\r\n"
        )


async def test_a_foreign_host_gets_no_metadata_naming_it(production: Production) -> None:
    for port in production.ports.values():
        async with httpx2.AsyncClient(timeout=10, trust_env=False) as raw:
            response = await raw.get(
                f"http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp",
                headers={
                    "host": "evil.example",
                    "x-forwarded-proto": "https",
                    "x-forwarded-host": "evil.example",
                },
            )
            assert "evil.example" not in response.text
            if response.status_code == 200:
                assert response.json()["resource"] == f"https://{MCP_NAME}/mcp"


async def test_the_sign_in_cookie_is_out_of_reach_of_other_ports_and_of_http(
    production: Production, http: httpx2.AsyncClient
) -> None:
    """Another port of the same host (a local program, a client's loopback callback) receives and
    sets cookies of a plain-http issuer; with an https issuer the sign-in cookie is `__Host-`
    (no Domain, Path=/, Secure: never sent to nor set by http://127.0.0.1:<port>) and HttpOnly."""
    client_id = (await register(http))["client_id"]
    started = await http.get(
        "/authorize", params=authorize_params(client_id, new_pkce(), scope="mcp:tools:read")
    )
    assert started.status_code in (302, 303), started.text
    (cookie,) = [value for name, value in started.headers.multi_items() if name == "set-cookie"]
    name, _, attributes = cookie.partition(";")
    assert name.startswith("__Host-mcp_as_session=")
    flags = {
        part.strip().split("=")[0].lower(): part.strip() for part in attributes.split(";") if part.strip()
    }
    assert "secure" in flags
    assert "httponly" in flags
    assert flags["samesite"].lower() == "samesite=lax"
    assert flags["path"] == "Path=/"
    assert "domain" not in flags
