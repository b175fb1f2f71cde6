"""Refresh rotation's grace period across instances: two `python -m mcp_server` processes (internal
mode, the AS in each) on one real Redis, as behind a load balancer without affinity.

What real clients do (docs/oauth.md, "Refreshing tokens"): refresh concurrently, the requests
landing on different instances, and retry on another instance when a response is lost on the way.
Within REFRESH_TOKEN_GRACE_PERIOD all of them get the one pair the rotation issued; after it, the
old token is reuse and ends the grant on every instance; another client presenting it is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from shared.storage.records import refresh_retry_key
from shared.storage.redis import RedisStore
from tests.fixtures.redis_server import RedisServer
from tests.resilience.cluster import (
    TIMEOUT,
    Cluster,
    Minted,
    build_cluster,
    call,
    http_client,
    mint,
    modern_call,
    register,
    running,
    structured,
)

pytestmark = pytest.mark.timeout(120)

RACERS = 20
REFRESH_INVALID = "the refresh token is invalid, expired or revoked"


def start(redis_server: RedisServer, workdir: Path, grace: int) -> Cluster:
    return build_cluster(
        "internal",
        workdir,
        redis_url=redis_server.url,
        instances=2,
        env={"REFRESH_TOKEN_GRACE_PERIOD": str(grace)},
    )


@pytest.fixture(scope="module")
def pair(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Two instances with the default grace period (30 s)."""
    with running(start(redis_server, Path(tmp_path_factory.mktemp("grace")), 30)) as cluster:
        yield cluster


def on(cluster: Cluster, index: int, url: str) -> str:
    """`url` (on the public address) sent to instance `index`."""
    return url.replace(cluster.public_url, cluster.url(index), 1)


def refresh_form(minted: Minted, refresh_token: str, client_id: str | None = None) -> dict[str, str]:
    return {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": client_id or minted.client_id,
    }


async def whoami_status(cluster: Cluster, token: str) -> list[int]:
    """What each instance answers a tools/call with `token`."""
    body, headers = modern_call("whoami", {}, token)
    async with httpx2.AsyncClient(timeout=TIMEOUT, trust_env=False) as http:
        return [
            (await http.post(f"{cluster.url(i)}/mcp", json=body, headers=headers)).status_code for i in (0, 1)
        ]


async def test_concurrent_refreshes_on_two_instances_all_get_one_working_pair(pair: Cluster) -> None:
    with http_client() as browser:
        minted = mint(pair, browser)
    assert minted.refresh_token
    form = refresh_form(minted, minted.refresh_token)
    token_url = minted.metadata["token_endpoint"]
    limits = httpx2.Limits(max_connections=RACERS)
    async with httpx2.AsyncClient(timeout=TIMEOUT, trust_env=False, limits=limits) as http:
        answers = await asyncio.gather(
            *(http.post(on(pair, i % 2, token_url), data=form) for i in range(RACERS))
        )

    assert [a.status_code for a in answers] == [200] * RACERS, [
        a.text for a in answers if a.status_code != 200
    ]
    pairs = {(a.json()["access_token"], a.json()["refresh_token"]) for a in answers}
    assert len(pairs) == 1, f"{len(pairs)} different pairs"
    ((access_token, refresh_token),) = pairs
    assert await whoami_status(pair, access_token) == [200, 200]
    assert await whoami_status(pair, minted.access_token) == [200, 200], "the grant must live on"
    async with httpx2.AsyncClient(timeout=TIMEOUT, trust_env=False) as http:
        onwards = await http.post(on(pair, 1, token_url), data=refresh_form(minted, refresh_token))
        assert onwards.status_code == 200, onwards.text
        assert structured(await call(http, f"{pair.url(0)}/mcp", onwards.json()["access_token"], "whoami"))


class ResponseDroppingProxy:
    """A TCP proxy in front of one instance that passes each request on, waits for the whole
    response and then cuts the client's connection without passing it back: the response is lost
    on the way (a balancer or a network dropping it), after the server did the work."""

    def __init__(self, port: int) -> None:
        self._port = port
        self.swallowed: list[bytes] = []
        self.url = ""

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[ResponseDroppingProxy]:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        try:
            yield self
        finally:
            server.close()
            await server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self._port)
        try:
            upstream_writer.write(await _http_message(reader))
            await upstream_writer.drain()
            self.swallowed.append(await _http_message(upstream_reader))
        finally:
            upstream_writer.close()
            writer.transport.abort()  # a reset instead of the response


async def _http_message(reader: asyncio.StreamReader) -> bytes:
    """One HTTP/1.1 message with a Content-Length body, as bytes."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head + await reader.readexactly(length)


async def test_a_retry_on_another_instance_after_a_lost_response_gets_what_the_response_carried(
    pair: Cluster,
) -> None:
    with http_client() as browser:
        minted = mint(pair, browser)
    assert minted.refresh_token
    form = refresh_form(minted, minted.refresh_token)
    path = minted.metadata["token_endpoint"].removeprefix(pair.public_url)
    proxy = ResponseDroppingProxy(pair.ports[0])
    async with proxy.serving(), httpx2.AsyncClient(timeout=TIMEOUT, trust_env=False) as http:
        with pytest.raises(httpx2.TransportError):  # the client sees the connection fail: it retries
            await http.post(f"{proxy.url}{path}", data=form, headers={"host": f"127.0.0.1:{pair.ports[0]}"})
        retried = await http.post(f"{pair.url(1)}{path}", data=form)

    (lost,) = proxy.swallowed
    assert lost.startswith(b"HTTP/1.1 200"), lost[:200]
    lost_tokens = json.loads(lost.partition(b"\r\n\r\n")[2])
    assert retried.status_code == 200, retried.text
    assert retried.json()["refresh_token"] == lost_tokens["refresh_token"]
    assert retried.json()["access_token"] == lost_tokens["access_token"]
    assert await whoami_status(pair, lost_tokens["access_token"]) == [200, 200]


async def test_another_client_presenting_a_just_rotated_token_on_another_instance_is_refused(
    pair: Cluster,
) -> None:
    with http_client() as browser:
        minted = mint(pair, browser)
        other_client = register(browser, minted.metadata, name="someone else")
    assert minted.refresh_token
    token_url = minted.metadata["token_endpoint"]
    async with httpx2.AsyncClient(timeout=TIMEOUT, trust_env=False) as http:
        rotated = (
            await http.post(on(pair, 0, token_url), data=refresh_form(minted, minted.refresh_token))
        ).json()
        stolen = refresh_form(minted, minted.refresh_token, client_id=other_client)
        refused = await http.post(on(pair, 1, token_url), data=stolen)

    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == "invalid_grant"
    assert "access_token" not in refused.text
    assert await whoami_status(pair, rotated["access_token"]) == [200, 200]


async def retry_record_gone(cluster: Cluster, redis_url: str, refresh_token: str) -> None:
    """Wait until Redis itself expired the token's rotation record (the grace period's end)."""
    store = RedisStore.from_url(redis_url, key_prefix=cluster.env["REDIS_KEY_PREFIX"])
    try:
        deadline = time.monotonic() + 15
        while await store.get(refresh_retry_key(refresh_token)) is not None:
            assert time.monotonic() < deadline, "the grace period did not end"
            await asyncio.sleep(0.05)
    finally:
        await store.close()


async def test_after_the_grace_period_the_old_token_on_another_instance_ends_the_grant_everywhere(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    with running(start(redis_server, tmp_path, 2)) as cluster:
        with http_client() as browser:
            minted = mint(cluster, browser)
        assert minted.refresh_token
        token_url = minted.metadata["token_endpoint"]
        form = refresh_form(minted, minted.refresh_token)
        async with httpx2.AsyncClient(timeout=TIMEOUT, trust_env=False) as http:
            rotated: dict[str, Any] = (await http.post(on(cluster, 0, token_url), data=form)).json()
            await retry_record_gone(cluster, redis_server.url, minted.refresh_token)

            reused = await http.post(on(cluster, 1, token_url), data=form)
            assert reused.status_code == 400, reused.text
            assert reused.json() == {"error": "invalid_grant", "error_description": REFRESH_INVALID}

            assert await whoami_status(cluster, rotated["access_token"]) == [401, 401]
            assert await whoami_status(cluster, minted.access_token) == [401, 401]
            onwards = await http.post(
                on(cluster, 0, token_url), data=refresh_form(minted, rotated["refresh_token"])
            )
            assert onwards.status_code == 400, onwards.text
