"""Redis faults under a running MCP server (internal mode: every request reads the token store).

One `python -m mcp_server` on its own redis-server with AOF on (appendonly yes, the persistence
docs/operations.md recommends). Each test takes Redis away in one way and brings it back; none
restarts the app. What must hold:
- a restart loses no issued token, registered client, grant, login session or note, and requests
  in flight during it get 200 or a clean 503, never a 500;
- while Redis is down, every endpoint answers a clear 503 with Retry-After (JSON on the API, an
  HTML page in the browser), /readyz says unavailable, /healthz stays up, and all of it promptly;
- a Redis that hangs (SIGSTOP) turns into the same 503 within the client's socket timeout;
- when Redis returns, service resumes on the next request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.e2e.login_driver import authorize
from tests.fixtures.redis_server import RedisServer
from tests.fixtures.waits import eventually
from tests.resilience.cluster import (
    TIMEOUT,
    Cluster,
    build_cluster,
    call,
    http_client,
    mint,
    modern_call,
    pkce,
    running,
    structured,
    token_request,
)

pytestmark = pytest.mark.timeout(90)

# A dead Redis is refused at once; the 503 must not wait for anything.
PROMPT = 3.0
# A hung Redis costs the socket timeout (2 s) once: timeouts are not retried (shared/storage/redis.py).
HUNG_BOUND = 3.5


@pytest.fixture(scope="module")
def cluster(own_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    deployment = build_cluster(
        "internal", Path(tmp_path_factory.mktemp("redis-faults")), redis_url=own_redis.url, instances=1
    )
    with running(deployment):
        yield deployment


@pytest.fixture
def redis(own_redis: RedisServer) -> Iterator[RedisServer]:
    """The module's Redis, guaranteed up again (and not paused) after each test."""
    try:
        yield own_redis
    finally:
        own_redis.resume()
        if not own_redis.running:
            own_redis.start()


def assert_clear_503(response: httpx2.Response, *, json_body: bool = True) -> None:
    assert response.status_code == 503, (response.request.url, response.status_code, response.text[:300])
    assert response.headers.get("retry-after", "").isdigit(), response.headers
    if json_body:
        body = response.json()
        assert body.get("error") == "temporarily_unavailable", body
        assert "Traceback" not in response.text, response.text
        assert "redis" not in response.text.lower(), response.text


async def test_a_redis_restart_with_aof_loses_no_token_client_grant_or_login_and_never_answers_500(
    cluster: Cluster, redis: RedisServer
) -> None:
    url = f"{cluster.url(0)}/mcp"
    with http_client() as browser:  # keeps the login cookie, as a browser would
        minted = mint(cluster, browser)
        async with httpx2.AsyncClient(timeout=TIMEOUT, trust_env=False) as http:
            note = structured(
                await call(http, url, minted.access_token, "notes_add", text="survives restarts")
            )
            statuses: list[int] = []
            stop = asyncio.Event()

            async def keep_calling() -> None:
                body, headers = modern_call("whoami", {}, minted.access_token)
                while not stop.is_set():
                    statuses.append((await http.post(url, json=body, headers=headers)).status_code)
                    await asyncio.sleep(0.005)

            load = asyncio.create_task(keep_calling())

            async def served_since(start: int) -> bool:  # ten answers since, the latest a 200
                return len(statuses) >= start + 10 and statuses[-1] == 200

            await eventually(lambda: served_since(0), "calls served before the restart")
            await asyncio.to_thread(redis.restart)
            restarted = len(statuses)
            await eventually(lambda: served_since(restarted), "calls served again after the restart")
            stop.set()
            await asyncio.wait_for(load, 15)
            assert set(statuses) <= {200, 503}, sorted(set(statuses))
            assert statuses[-1] == 200, statuses[-20:]

            # The same token, the note, the refresh token, the registered client, the login session.
            who = structured(await call(http, url, minted.access_token, "whoami"))
            assert who["subject"] == "demo"
            listed = structured(await call(http, url, minted.access_token, "notes_list"))
            assert note["id"] in [n["id"] for n in listed["notes"]]
        refreshed = token_request(
            browser,
            minted.metadata,
            {
                "grant_type": "refresh_token",
                "refresh_token": str(minted.refresh_token),
                "client_id": minted.client_id,
            },
        )
        assert refreshed.status_code == 200, refreshed.text
        verifier, challenge = pkce()
        again = authorize(
            f"{minted.metadata['authorization_endpoint']}?response_type=code&client_id={minted.client_id}"
            f"&redirect_uri=http://127.0.0.1:9/callback&code_challenge={challenge}&code_challenge_method=S256"
            f"&state=s1&resource={cluster.mcp_url}&scope=notes:read",
            client=browser,
        )
        assert again.code, f"the registered client or the grant was lost: {again.redirect_url}"
        assert not again.saw_login, "the login session was lost with the restart"
        exchanged = token_request(
            browser,
            minted.metadata,
            {
                "grant_type": "authorization_code",
                "code": again.code,
                "redirect_uri": "http://127.0.0.1:9/callback",
                "client_id": minted.client_id,
                "code_verifier": verifier,
            },
        )
        assert exchanged.status_code == 200, exchanged.text


async def test_while_redis_is_down_every_endpoint_answers_a_prompt_clear_503_and_service_resumes(
    cluster: Cluster, redis: RedisServer
) -> None:
    base, url = cluster.url(0), f"{cluster.url(0)}/mcp"
    with http_client() as browser:
        minted = mint(cluster, browser)
    redis.stop()
    async with httpx2.AsyncClient(timeout=TIMEOUT, trust_env=False) as http:
        body, headers = modern_call("whoami", {}, minted.access_token)
        checks = {
            "mcp": http.post(url, json=body, headers=headers),
            "token": http.post(
                f"{base}/token",
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": str(minted.refresh_token),
                    "client_id": minted.client_id,
                },
            ),
            "register": http.post(f"{base}/register", json={"redirect_uris": ["http://127.0.0.1:9/cb"]}),
            "authorize": http.get(
                f"{base}/authorize",
                params={"response_type": "code", "client_id": minted.client_id, "code_challenge": "x" * 43},
            ),
            "readyz": http.get(f"{base}/readyz"),
            "healthz": http.get(f"{base}/healthz"),
        }
        started = time.monotonic()
        answers = dict(zip(checks, await asyncio.gather(*checks.values()), strict=True))
        assert time.monotonic() - started < PROMPT, "a dead Redis must not make anyone wait"
        assert_clear_503(answers["mcp"])
        assert_clear_503(answers["token"])
        assert_clear_503(answers["register"])
        assert_clear_503(answers["authorize"], json_body=False)  # the browser gets a page
        assert answers["readyz"].status_code == 503
        assert answers["readyz"].json()["status"] == "unavailable"
        assert answers["healthz"].status_code == 200, "liveness must not fail: restarting would not help"

        await asyncio.to_thread(redis.start)
        assert (await http.get(f"{base}/readyz")).status_code == 200
        assert structured(await call(http, url, minted.access_token, "whoami"))["subject"] == "demo"


async def test_a_hung_redis_turns_into_a_503_within_the_socket_timeout_not_a_hang(
    cluster: Cluster, redis: RedisServer
) -> None:
    base, url = cluster.url(0), f"{cluster.url(0)}/mcp"
    with http_client() as browser:
        minted = mint(cluster, browser)
    body, headers = modern_call("whoami", {}, minted.access_token)
    async with httpx2.AsyncClient(timeout=TIMEOUT, trust_env=False) as http:
        redis.pause()
        started = time.monotonic()
        hung, ready = await asyncio.gather(
            http.post(url, json=body, headers=headers), http.get(f"{base}/readyz")
        )
        elapsed = time.monotonic() - started
        redis.resume()
        assert_clear_503(hung)
        assert ready.status_code == 503
        assert elapsed < HUNG_BOUND, f"took {elapsed:.1f}s"
        assert structured(await call(http, url, minted.access_token, "whoami"))["subject"] == "demo"
