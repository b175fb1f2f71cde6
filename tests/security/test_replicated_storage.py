"""Attacks on a replicated Redis (Sentinel): the store must fail closed and keep its secrets.

Real `redis-server`s and `redis-sentinel`s on loopback (tests/fixtures/redis_topologies.py) and
real `python -m mcp_server` processes (internal mode), as in tests/resilience/.

- A stolen token that its owner revoked is replayed while the primary dies and a replica takes
  over: it is refused (`401`) or the request fails (`503`), never served, and stays revoked on the
  new primary (the revocation had been replicated, as docs/operations.md requires for a promise).
- A deployment whose Redis or sentinel password is wrong answers `503`; neither password reaches a
  response or a log line, whatever the attacker sends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.fixtures.redis_topologies import SentinelDeployment, start_sentinel_deployment
from tests.resilience.cluster import (
    TIMEOUT,
    Cluster,
    build_cluster,
    call,
    http_client,
    mint,
    modern_call,
    running,
    structured,
    token_request,
)

pytestmark = pytest.mark.timeout(120)

DATA_PASSWORD = "data-pw-7f3a9c"
SENTINEL_PASSWORD = "sentinel-pw-51be02"


@pytest.fixture(scope="module")
def sentinel_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelDeployment]:
    deployment = start_sentinel_deployment(
        Path(tmp_path_factory.mktemp("security-sentinel")),
        password=DATA_PASSWORD,
        sentinel_password=SENTINEL_PASSWORD,
    )
    try:
        yield deployment
    finally:
        deployment.stop()


@pytest.fixture(scope="module")
def app(sentinel_redis: SentinelDeployment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    deployment = build_cluster(
        "internal",
        Path(tmp_path_factory.mktemp("security-sentinel-app")),
        redis_url=sentinel_redis.url,
        instances=1,
        env={"REDIS_SENTINEL_PASSWORD": SENTINEL_PASSWORD},
    )
    with running(deployment):
        yield deployment


async def test_a_revoked_token_replayed_across_a_failover_is_never_served_and_stays_revoked(
    app: Cluster, sentinel_redis: SentinelDeployment
) -> None:
    url = f"{app.url(0)}/mcp"
    with http_client() as browser:
        stolen, control = mint(app, browser), mint(app, browser)
        revoked = browser.post(
            stolen.metadata["revocation_endpoint"],
            data={"token": str(stolen.refresh_token), "client_id": stolen.client_id},
        )
        assert revoked.status_code == 200, revoked.text
    await asyncio.to_thread(sentinel_redis.wait_replicated)  # the revocation is on the replica

    replay_body, replay_headers = modern_call("whoami", {}, stolen.access_token)
    control_body, control_headers = modern_call("whoami", {}, control.access_token)
    replayed: list[int] = []
    async with httpx2.AsyncClient(timeout=TIMEOUT, trust_env=False) as http:
        assert (await http.post(url, json=replay_body, headers=replay_headers)).status_code == 401
        sentinel_redis.kill_primary()
        failover = asyncio.create_task(asyncio.to_thread(sentinel_redis.wait_for_failover))
        served_again = 0
        async with asyncio.timeout(30):
            while served_again < 5:  # until service is back for honest tokens
                replayed.append((await http.post(url, json=replay_body, headers=replay_headers)).status_code)
                control_status = (
                    await http.post(url, json=control_body, headers=control_headers)
                ).status_code
                served_again = served_again + 1 if control_status == 200 and failover.done() else 0
        await failover

        assert set(replayed) <= {401, 503}, sorted(set(replayed))
        assert 503 in replayed, "the replay never met the failover: the test proved nothing"
        assert replayed[-1] == 401
        assert structured(await call(http, url, control.access_token, "whoami"))["subject"] == "demo"
    with http_client() as browser:
        refreshed = token_request(
            browser,
            stolen.metadata,
            {
                "grant_type": "refresh_token",
                "refresh_token": str(stolen.refresh_token),
                "client_id": stolen.client_id,
            },
        )
        assert refreshed.status_code == 400, refreshed.text
        assert refreshed.json()["error"] == "invalid_grant"


def _misconfigured(sentinel_redis: SentinelDeployment, workdir: Path) -> dict[str, Cluster]:
    """Instances that cannot reach their data, each in a way an operator gets wrong."""
    hosts = ",".join(f"127.0.0.1:{s.port}" for s in sentinel_redis.sentinels)
    setups = {
        "wrong data password": (f"redis+sentinel://:{DATA_PASSWORD}x@{hosts}/mymaster/0", SENTINEL_PASSWORD),
        "wrong sentinel password": (
            f"redis+sentinel://:{DATA_PASSWORD}@{hosts}/mymaster/0",
            f"{SENTINEL_PASSWORD}x",
        ),
    }
    return {
        name: build_cluster(
            "internal",
            workdir / name.replace(" ", "-"),
            redis_url=url,
            instances=1,
            env={"REDIS_SENTINEL_PASSWORD": sentinel_password},
        )
        for name, (url, sentinel_password) in setups.items()
    }


async def test_no_redis_or_sentinel_password_reaches_a_client_or_a_log_line_when_redis_is_out_of_reach(
    sentinel_redis: SentinelDeployment, tmp_path: Path
) -> None:
    deployments = _misconfigured(sentinel_redis, tmp_path)
    for deployment in deployments.values():
        for process in deployment.processes:
            process.launch()
    try:
        for deployment in deployments.values():
            deployment.start()
        async with httpx2.AsyncClient(timeout=TIMEOUT, trust_env=False) as http:
            for name, deployment in deployments.items():
                base = deployment.url(0)
                body, headers = modern_call("whoami", {}, "an-attacker-supplied-token")
                answers = await asyncio.gather(
                    http.post(f"{base}/mcp", json=body, headers=headers),
                    http.post(f"{base}/token", data={"grant_type": "refresh_token", "refresh_token": "x"}),
                    http.post(f"{base}/register", json={"redirect_uris": ["http://127.0.0.1:9/cb"]}),
                    http.get(f"{base}/authorize", params={"client_id": "x", "response_type": "code"}),
                    http.get(f"{base}/readyz"),
                )
                for answer in answers:
                    assert answer.status_code == 503, (
                        name,
                        answer.request.url,
                        answer.status_code,
                        answer.text,
                    )
                    exposed = answer.text + str(answer.headers)
                    assert DATA_PASSWORD not in exposed, (name, answer.request.url)
                    assert SENTINEL_PASSWORD not in exposed, (name, answer.request.url)
        for name, deployment in deployments.items():
            logs = deployment.log_text()
            logged = '" 503' in logs  # the access log's status after the request line, not a timestamp's .503
            assert logged, f"{name}: the requests were not logged, so the log proves nothing"
            assert DATA_PASSWORD not in logs, name
            assert SENTINEL_PASSWORD not in logs, name
    finally:
        for deployment in deployments.values():
            deployment.stop()
