"""Losing the Redis primary: Sentinel fails over, the servers follow without a restart.

A real replicated Redis on loopback (`tests/fixtures/redis_topologies.py`): a primary, a replica
and three `redis-sentinel`s (quorum two, a primary is down after a second of silence), passwords on
the data nodes and on the sentinels. Two `python -m mcp_server` instances (internal mode: every
request reads the token store) take `REDIS_URL=redis+sentinel://...`.

Under steady load from both instances the primary is killed (SIGKILL, a crashed host), after
the replica has acknowledged everything written so far (replication offsets, so "replicated" is a
fact, not a hope). What must hold:
- clients get `200` or a clean `503` + `Retry-After`, never a `500` and never a `401` (a token
  that was valid must not look invalid because its record could not be read);
- the `503`s are one run per client, ending once the sentinels have promoted the replica: service
  comes back by itself, in the same processes;
- every access token, refresh token, client, grant and note written before the kill still works.

The killed primary then comes back as a replica of the new primary, and a planned switch-over
(`SENTINEL FAILOVER`) makes it primary again under load. Nothing breaks this time (the demoted
node still answers reads), so the servers must notice the move themselves: they leave the demoted
node within seconds, with the same guarantees for clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import pytest

from shared.storage.redis import RedisStore
from tests.fixtures.redis_server import RedisServer
from tests.fixtures.redis_topologies import SERVICE, SentinelDeployment, start_sentinel_deployment, wait_until
from tests.resilience.cluster import (
    TIMEOUT,
    Cluster,
    Minted,
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

CLIENTS_PER_INSTANCE = 2
# How long service may take to come back once the sentinels have a new primary: the app's next
# connection asks them. Generous: the machine is shared with other tests.
RECOVERY_BOUND = 15.0
# No request waits for the failover: a dead primary refuses at once, and the store retries a
# broken connection once (shared/storage/redis.py), so even an unlucky one costs at most a socket
# timeout (2 s) and a sentinel round, never the whole failover.
ANSWER_BOUND = 4.0


@pytest.fixture(scope="module")
def sentinel_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelDeployment]:
    deployment = start_sentinel_deployment(Path(tmp_path_factory.mktemp("failover-redis")))
    try:
        yield deployment
    finally:
        deployment.stop()


@pytest.fixture(scope="module")
def cluster(
    sentinel_redis: SentinelDeployment, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    deployment = build_cluster(
        "internal",
        Path(tmp_path_factory.mktemp("failover-app")),
        redis_url=sentinel_redis.url,
        instances=2,
        env={"REDIS_SENTINEL_PASSWORD": str(sentinel_redis.sentinel_password)},
    )
    with running(deployment):
        yield deployment


@dataclass
class Answer:
    status: int
    retry_after: str | None
    error: str | None
    seconds: float


@dataclass
class Load:
    """Clients calling `whoami` in a loop, each with its own token, on one instance each."""

    answers: dict[int, list[Answer]] = field(default_factory=dict)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    answered: asyncio.Event = field(default_factory=asyncio.Event)  # set on every answer

    def oks_since(self, client: int, mark: int) -> int:
        return sum(1 for a in self.answers[client][mark:] if a.status == 200)

    def marks(self) -> dict[int, int]:
        return {client: len(answers) for client, answers in self.answers.items()}


async def keep_calling(load: Load, index: int, http: httpx2.AsyncClient, url: str, token: str) -> None:
    answers = load.answers[index]
    body, headers = modern_call("whoami", {}, token)
    while not load.stop.is_set():
        started = time.monotonic()
        response = await http.post(url, json=body, headers=headers)
        error = response.json().get("error") if response.status_code == 503 else None
        seconds = time.monotonic() - started
        answers.append(Answer(response.status_code, response.headers.get("retry-after"), error, seconds))
        load.answered.set()
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def under_load(cluster: Cluster, tokens: list[str]) -> AsyncIterator[Load]:
    load = Load({index: [] for index in range(len(tokens))})
    async with httpx2.AsyncClient(timeout=TIMEOUT, trust_env=False) as http:
        tasks = [
            asyncio.create_task(keep_calling(load, i, http, f"{cluster.url(i % 2)}/mcp", token))
            for i, token in enumerate(tokens)
        ]
        try:
            await wait_for(
                load, lambda: all(load.oks_since(i, 0) >= 5 for i in range(len(tokens))), "steady load"
            )
            yield load
        finally:
            load.stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 30)


async def wait_for(load: Load, condition: Callable[[], bool], what: str) -> None:
    """Await a condition the load's answers make true, within RECOVERY_BOUND."""
    try:
        async with asyncio.timeout(RECOVERY_BOUND):
            while not condition():
                load.answered.clear()
                await load.answered.wait()
    except TimeoutError:
        raise AssertionError(f"no {what} after {RECOVERY_BOUND:.0f}s") from None


def assert_one_bounded_run_of_clean_503s(load: Load, mark: dict[int, int]) -> int:
    """From `mark` on, each client saw 200s, then at most one run of 503s, then 200s again; every
    503 is the JSON temporarily_unavailable with Retry-After, and came promptly. Returns how many
    503s there were."""
    unavailable = 0
    for client, answers in load.answers.items():
        statuses = [a.status for a in answers[mark[client] :]]
        assert set(statuses) <= {200, 503}, f"client {client}: {sorted(set(statuses))}"
        runs = "".join("x" if s == 503 else "." for s in statuses)
        first, last = runs.find("x"), runs.rfind("x")
        if first >= 0:
            assert "." not in runs[first : last + 1], f"client {client}: the 503s came and went: {runs}"
            assert runs.endswith("."), f"client {client} never recovered: {runs}"
        for answer in answers[mark[client] :]:
            assert answer.seconds < ANSWER_BOUND, answer
            if answer.status == 503:
                unavailable += 1
                assert answer.error == "temporarily_unavailable", answer
                assert answer.retry_after is not None, answer
                assert answer.retry_after.isdigit(), answer
    return unavailable


def app_connections(deployment: SentinelDeployment, server: RedisServer) -> int:
    """How many connections the MCP servers hold to one data node (they name themselves)."""
    with deployment.client_of(server) as client:
        return sum(1 for c in client.client_list() if c["name"] == "mcp-reference-server")


async def assert_still_valid(cluster: Cluster, minted: list[Minted], note_id: str) -> None:
    async with httpx2.AsyncClient(timeout=TIMEOUT, trust_env=False) as http:
        for index, token in enumerate(minted):
            url = f"{cluster.url(index % 2)}/mcp"
            assert structured(await call(http, url, token.access_token, "whoami"))["subject"] == "demo"
        listed = structured(await call(http, f"{cluster.url(1)}/mcp", minted[0].access_token, "notes_list"))
        assert note_id in [n["id"] for n in listed["notes"]]


async def test_killing_the_primary_under_load_costs_one_bounded_run_of_503s_and_loses_no_replicated_token(
    cluster: Cluster, sentinel_redis: SentinelDeployment
) -> None:
    pids = [process.pid() for process in cluster.instances]
    with http_client() as browser:
        minted = [mint(cluster, browser) for _ in range(CLIENTS_PER_INSTANCE * 2)]
    async with httpx2.AsyncClient(timeout=TIMEOUT, trust_env=False) as http:
        url = f"{cluster.url(0)}/mcp"
        note = structured(
            await call(http, url, minted[0].access_token, "notes_add", text="outlives its primary")
        )
    await asyncio.to_thread(sentinel_redis.wait_replicated)  # everything above is on the replica

    old_primary = sentinel_redis.primary.port
    async with under_load(cluster, [m.access_token for m in minted]) as load:
        mark = load.marks()
        sentinel_redis.kill_primary()
        promoted = await asyncio.to_thread(sentinel_redis.wait_for_failover)
        assert promoted.port != old_primary
        recovered = load.marks()
        await wait_for(load, lambda: all(load.oks_since(c, recovered[c]) >= 5 for c in recovered), "recovery")

    unavailable = assert_one_bounded_run_of_clean_503s(load, mark)
    assert unavailable > 0, "the kill did not reach the clients: the test proved nothing"
    assert [process.pid() for process in cluster.instances] == pids, "an instance was restarted"
    assert all(process.running for process in cluster.instances)

    await assert_still_valid(cluster, minted, note["id"])
    with http_client() as browser:  # refresh tokens, clients and grants came through too
        for token in minted:
            refreshed = token_request(
                browser,
                token.metadata,
                {
                    "grant_type": "refresh_token",
                    "refresh_token": str(token.refresh_token),
                    "client_id": token.client_id,
                },
            )
            assert refreshed.status_code == 200, refreshed.text
        assert mint(cluster, browser).access_token, "a new sign-in after the failover"


async def test_the_old_primary_returns_as_a_replica_and_a_planned_switch_over_back_to_it_is_as_clean(
    cluster: Cluster, sentinel_redis: SentinelDeployment
) -> None:
    if not sentinel_redis.killed:  # run alone: make the first failover happen now
        sentinel_redis.kill_primary()
        await asyncio.to_thread(sentinel_redis.wait_for_failover)
    old = sentinel_redis.killed[-1]
    await asyncio.to_thread(sentinel_redis.rejoin, old)  # same port: the sentinels know it
    with http_client() as browser:
        minted = [mint(cluster, browser) for _ in range(CLIENTS_PER_INSTANCE * 2)]
    async with httpx2.AsyncClient(timeout=TIMEOUT, trust_env=False) as http:
        note = structured(
            await call(
                http, f"{cluster.url(1)}/mcp", minted[0].access_token, "notes_add", text="switched over"
            )
        )
    await asyncio.to_thread(sentinel_redis.wait_replicated)

    async with under_load(cluster, [m.access_token for m in minted]) as load:
        mark = load.marks()
        demoted = sentinel_redis.primary
        assert app_connections(sentinel_redis, demoted) > 0
        with sentinel_redis.sentinels[0].client() as sentinel:
            assert sentinel.execute_command("SENTINEL", "FAILOVER", SERVICE)
        promoted = await asyncio.to_thread(sentinel_redis.wait_for_failover)
        assert promoted.port == old.port
        # The demoted node still answers reads, so nothing breaks: the servers must notice the move
        # themselves (they ask the sentinels every second) and leave it.
        await asyncio.to_thread(
            wait_until,
            lambda: app_connections(sentinel_redis, demoted) == 0,
            "the servers to leave the demoted primary",
            RECOVERY_BOUND,
        )
        recovered = load.marks()
        await wait_for(load, lambda: all(load.oks_since(c, recovered[c]) >= 5 for c in recovered), "recovery")
        assert app_connections(sentinel_redis, promoted) > 0

    assert_one_bounded_run_of_clean_503s(load, mark)
    await assert_still_valid(cluster, minted, note["id"])


async def test_when_the_sentinels_name_another_primary_the_store_moves_to_it_though_nothing_broke(
    tmp_path: Path,
) -> None:
    """The split brain Sentinel's own clean-up does not reach: the sentinels lose sight of the
    primary (and promote the replica) while the servers still reach it, so no connection breaks
    and nobody tells the old primary. The store must follow the sentinels, not the socket it holds:
    writes that kept going to the old primary would be lost when it is made a replica."""
    deployment = await asyncio.to_thread(start_sentinel_deployment, tmp_path, replicas=1, sentinels=1)
    store = RedisStore.from_url(
        deployment.url, key_prefix="moved:", sentinel_password=deployment.sentinel_password
    )
    try:
        old, new = deployment.primary, deployment.replicas[0]
        assert await store.set("before", "on the old primary") is True
        assert app_connections(deployment, old) > 0
        with deployment.client_of(new) as client:
            client.execute_command("REPLICAOF", "NO", "ONE")
        with deployment.sentinels[0].client() as sentinel:  # the sentinels change their minds
            sentinel.execute_command("SENTINEL", "REMOVE", SERVICE)
            sentinel.execute_command("SENTINEL", "MONITOR", SERVICE, "127.0.0.1", new.port, 1)
            sentinel.execute_command("SENTINEL", "SET", SERVICE, "auth-pass", str(deployment.password))

        written = 0
        with deployment.client_of(new) as on_new:
            async with asyncio.timeout(RECOVERY_BOUND):
                while not on_new.exists(f"moved:written-{written}"):
                    written += 1
                    assert await store.set(f"written-{written}", "after the move") is True
                    await asyncio.sleep(0.05)
        assert app_connections(deployment, old) == 0, "a connection stayed on the old primary"
        with deployment.client_of(old) as client:
            assert client.info("replication")["role"] == "master", "nobody told it: a real split brain"
    finally:
        await store.close()
        deployment.stop()
