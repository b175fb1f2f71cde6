"""External mode when its dependencies fail: the authorization server, or the Redis both share.

`python -m auth_server` + `python -m mcp_server` (introspection, INTROSPECTION_CACHE_TTL=4 s,
INTROSPECTION_TIMEOUT=1 s) on a redis-server with AOF. The documented contract
(docs/auth-modes.md, docs/operations.md):
- a token the MCP server introspected recently keeps working while the AS is away, for at most
  INTROSPECTION_CACHE_TTL after it was cached, then gets 503 like any other;
- a token it has not seen gets 503 + Retry-After at once (AS refusing connections) or within
  INTROSPECTION_TIMEOUT (AS hanging), never a 500 and never a hang;
- when the AS returns, both tokens work again without restarting the MCP server.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.fixtures.redis_server import RedisServer
from tests.resilience.cluster import (
    TIMEOUT,
    Cluster,
    ServerProcess,
    build_cluster,
    call,
    http_client,
    mint,
    modern_call,
    rpc_result,
    running,
    structured,
)

pytestmark = pytest.mark.timeout(90)

CACHE_TTL = 4.0
INTROSPECTION_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def cluster(own_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    deployment = build_cluster(
        "external",
        Path(tmp_path_factory.mktemp("as-faults")),
        redis_url=own_redis.url,
        instances=1,
        env={
            "INTROSPECTION_CACHE_TTL": str(int(CACHE_TTL)),
            "INTROSPECTION_TIMEOUT": str(INTROSPECTION_TIMEOUT),
        },
    )
    with running(deployment):
        yield deployment


@pytest.fixture
def auth_server(cluster: Cluster) -> Iterator[ServerProcess]:
    """The cluster's auth server, guaranteed running again after each test."""
    assert isinstance(cluster.auth, ServerProcess)
    try:
        yield cluster.auth
    finally:
        if cluster.auth.running:
            os.kill(cluster.auth.pid(), signal.SIGCONT)
        else:
            cluster.auth.start()


@pytest.fixture
def redis(own_redis: RedisServer) -> Iterator[RedisServer]:
    try:
        yield own_redis
    finally:
        own_redis.resume()
        if not own_redis.running:
            own_redis.start()


def tokens(cluster: Cluster, count: int) -> list[str]:
    with http_client() as http:
        return [mint(cluster, http).access_token for _ in range(count)]


async def whoami(http: httpx2.AsyncClient, cluster: Cluster, token: str) -> httpx2.Response:
    body, headers = modern_call("whoami", {}, token)
    return await http.post(cluster.mcp_url, json=body, headers=headers)


def assert_503(response: httpx2.Response) -> None:
    assert response.status_code == 503, (response.status_code, response.text[:300])
    assert response.headers.get("retry-after", "").isdigit(), response.headers
    assert response.json()["error"] == "temporarily_unavailable", response.text


async def test_while_the_auth_server_is_down_cached_tokens_work_within_the_cache_ttl_and_others_get_503(
    cluster: Cluster, auth_server: ServerProcess
) -> None:
    cached, uncached = tokens(cluster, 2)
    async with httpx2.AsyncClient(timeout=TIMEOUT, trust_env=False) as http:
        assert (await whoami(http, cluster, cached)).status_code == 200
        cached_at = time.monotonic()
        await asyncio.to_thread(auth_server.stop)

        assert (await whoami(http, cluster, cached)).status_code == 200, "a cached token must keep working"
        started = time.monotonic()
        assert_503(await whoami(http, cluster, uncached))
        assert time.monotonic() - started < INTROSPECTION_TIMEOUT + 1
        assert time.monotonic() - cached_at < CACHE_TTL, "too slow to prove anything; raise CACHE_TTL"

        await asyncio.sleep(max(0.0, cached_at + CACHE_TTL + 0.3 - time.monotonic()))
        assert_503(await whoami(http, cluster, cached))  # the bound: no longer than the cache TTL

        await asyncio.to_thread(auth_server.start)
        for token in (cached, uncached):
            assert structured(rpc_result(await whoami(http, cluster, token)))["subject"] == "demo"

        metrics = (await http.get(f"{cluster.url(0)}/metrics")).text
    assert metric(metrics, "mcpref_introspection_cache_hits_total") >= 1
    assert metric(metrics, "mcpref_introspection_cache_misses_total") >= 3
    assert metric(metrics, 'mcpref_auth_failures_total{reason="unavailable"}') >= 2


def metric(text: str, name: str) -> float:
    """The value of one sample in Prometheus text format (`name` may include its labels)."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics:\n{text[:3000]}")


async def test_a_hung_auth_server_costs_an_uncached_token_at_most_the_introspection_timeout(
    cluster: Cluster, auth_server: ServerProcess
) -> None:
    (uncached,) = tokens(cluster, 1)
    async with httpx2.AsyncClient(timeout=TIMEOUT, trust_env=False) as http:
        os.kill(auth_server.pid(), signal.SIGSTOP)
        started = time.monotonic()
        answers = await asyncio.gather(*(whoami(http, cluster, uncached) for _ in range(5)))
        elapsed = time.monotonic() - started
        os.kill(auth_server.pid(), signal.SIGCONT)
        for answer in answers:
            assert_503(answer)
        assert elapsed < INTROSPECTION_TIMEOUT + 1.5, f"took {elapsed:.2f}s"
        assert structured(rpc_result(await whoami(http, cluster, uncached)))["subject"] == "demo"


async def test_with_redis_down_external_mode_refuses_cleanly_and_recovers(
    cluster: Cluster, redis: RedisServer
) -> None:
    cached, uncached = tokens(cluster, 2)
    async with httpx2.AsyncClient(timeout=TIMEOUT, trust_env=False) as http:
        assert (await whoami(http, cluster, cached)).status_code == 200
        await asyncio.to_thread(redis.stop)
        # The AS cannot read its store: introspection of a new token is a 503 at the MCP server.
        assert_503(await whoami(http, cluster, uncached))
        # A cached token still identifies its caller; what needs the store is a tool error that
        # says why and invites a retry (not the SDK's opaque "Error executing tool").
        assert (await whoami(http, cluster, cached)).status_code == 200
        body, headers = modern_call("notes_list", {}, cached)
        notes = rpc_result(await http.post(cluster.mcp_url, json=body, headers=headers))
        assert notes["isError"] is True
        assert "temporarily unavailable" in notes["content"][0]["text"], notes
        assert (await http.get(f"{cluster.url(0)}/readyz")).status_code == 503
        assert (await http.get(f"{cluster.auth_url}/readyz")).status_code == 503
        await asyncio.to_thread(redis.start)
        for token in (cached, uncached):
            assert structured(await call(http, cluster.mcp_url, token, "notes_list"))["owner"] == "demo"
