"""Tasks on several instances sharing one Redis: any instance answers for any task, input and
cancellation reach the instance running it, and a task whose instance dies ends as failed.

Two real `python -m mcp_server` processes (internal mode, each with the authorization server)
on one real redis-server, with a short TASK_LEASE_SECONDS so the lease test is quick. Each
client here talks to one instance on purpose: the task is created on instance 0 and followed,
answered and cancelled on instance 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx2
import pytest

from mcp_server.tasks.store import LEASE_LAPSED_MESSAGE, TaskStore
from shared.storage.redis import RedisStore
from tests.fixtures.redis_server import RedisServer
from tests.fixtures.tasks_client import TaskClient
from tests.resilience.cluster import TIMEOUT, Cluster, build_cluster, http_client, mint, running

pytestmark = pytest.mark.timeout(120)

LEASE = 3.0


@pytest.fixture
def cluster(redis_server: RedisServer, tmp_path: Path) -> Iterator[Cluster]:
    """Function-scoped: the lease test kills one of its instances."""
    built = build_cluster(
        "internal", tmp_path, redis_url=redis_server.url, env={"TASK_LEASE_SECONDS": str(LEASE)}
    )
    with running(built):
        yield built


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(timeout=TIMEOUT, trust_env=False) as client:
        yield client


def clients(cluster: Cluster, http: httpx2.AsyncClient) -> tuple[TaskClient, TaskClient]:
    """One user's token (minted through the real flow) on instance 0, and on instance 1."""
    with http_client() as sync_http:
        token = mint(cluster, sync_http).access_token
    return (
        TaskClient(http, f"{cluster.url(0)}/mcp", token),
        TaskClient(http, f"{cluster.url(1)}/mcp", token),
    )


def without_meta(task: dict[str, object]) -> dict[str, object]:
    return {key: value for key, value in task.items() if key != "_meta"}


@contextlib.asynccontextmanager
async def task_store(cluster: Cluster) -> AsyncIterator[TaskStore]:
    """The tasks as the instances keep them in Redis (to see what a client cannot)."""
    store = RedisStore.from_url(cluster.env["REDIS_URL"], key_prefix=cluster.env["REDIS_KEY_PREFIX"])
    try:
        yield TaskStore(store, max_ttl=3600, per_owner=50)
    finally:
        await store.close()


async def test_a_task_started_on_one_instance_is_followed_and_answered_on_another(
    cluster: Cluster, http: httpx2.AsyncClient
) -> None:
    first, second = await asyncio.to_thread(clients, cluster, http)
    task_id = await first.start("draft_report", steps=2, seconds_per_step=0.05)

    asking = await second.wait_for(task_id, lambda task: task["status"] == "input_required")
    assert list(asking["inputRequests"]) == ["title"]
    await second.update(task_id, {"title": {"action": "accept", "content": {"title": "Across"}}})
    done = await second.finished(task_id)
    assert done["status"] == "completed", done
    assert done["result"]["structuredContent"]["title"] == "Across"
    assert without_meta(await first.get(task_id)) == without_meta(done)  # one truth, any instance
    listed = (await second.call("tasks_list"))["structuredContent"]["tasks"]
    assert [task["task_id"] for task in listed] == [task_id]


async def test_a_cancellation_on_one_instance_stops_the_work_on_the_other(
    cluster: Cluster, http: httpx2.AsyncClient
) -> None:
    first, second = await asyncio.to_thread(clients, cluster, http)
    task_id = await first.start("count_slowly", to=1000, seconds_per_step=0.05)
    await second.wait_for(task_id, lambda task: "Counted to" in task.get("statusMessage", ""))

    await second.cancel(task_id)
    assert (await first.get(task_id))["status"] == "cancelled"
    # Instance 0 notices within a heartbeat (a third of the lease) and stops counting: its
    # progress, which it stored every few steps, stops changing.
    async with task_store(cluster) as tasks:
        deadline = time.monotonic() + 4 * LEASE
        previous = None
        while (current := await tasks.read(task_id)) is not None and current.progress.message != previous:
            assert time.monotonic() < deadline, "instance 0 kept counting after the cancellation"
            previous = current.progress.message
            await asyncio.sleep(LEASE / 3)
        assert current is not None
        assert current.status == "cancelled"


async def test_a_task_whose_instance_dies_ends_as_failed_once_its_lease_lapses(
    cluster: Cluster, http: httpx2.AsyncClient
) -> None:
    first, second = await asyncio.to_thread(clients, cluster, http)
    task_id = await first.start("count_slowly", to=1000, seconds_per_step=0.05)
    await second.wait_for(task_id, lambda task: "Counted to" in task.get("statusMessage", ""))

    os.kill(cluster.instances[0].pid(), signal.SIGKILL)  # no shutdown, no last words
    assert (await second.get(task_id))["status"] == "working"  # its lease still runs
    failed = await second.finished(task_id, within=5 * LEASE)
    assert failed["status"] == "failed"
    assert failed["error"] == {"code": -32603, "message": LEASE_LAPSED_MESSAGE}
    assert "result" not in failed
    assert (await second.get(task_id))["status"] == "failed"  # and it stays so
