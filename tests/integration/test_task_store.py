"""The task store on every backend: MemoryStore (one process) and Redis alone, behind Sentinel and
on a three-primary Cluster (every operation touches one key, so the layout is valid on a cluster).

The store's own clock is a test clock here, so a lease can lapse without waiting for it; the
backends' expiry (a task's lifetime) is real time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from mcp_server.tasks.store import (
    LEASE_LAPSED_MESSAGE,
    Owner,
    TaskLimitReached,
    TaskOutcome,
    TaskProgress,
    TaskStore,
)
from shared.storage.base import Store
from shared.storage.memory import MemoryStore
from tests.integration.test_storage_contract import REDIS_TOPOLOGIES, redis_store, unique_prefix

ALICE = Owner("a" * 64, grant_id="grant-1")
BOB = Owner("b" * 64)
LEASE = 30.0


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", *REDIS_TOPOLOGIES])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    store: Store = (
        MemoryStore() if request.param == "memory" else redis_store(request, request.param, unique_prefix())
    )
    yield store
    await store.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def tasks(backend: Store, clock: Clock) -> TaskStore:
    return TaskStore(backend, max_ttl=60, per_owner=3, clock=clock)


async def create(tasks: TaskStore, owner: Owner = ALICE, ttl: float = 60) -> str:
    created = await tasks.create(
        owner, tool="count", scopes={"mcp:tools:read"}, ttl=ttl, poll_ms=1000, lease=LEASE
    )
    return created.task_id


async def test_a_task_is_found_by_its_owner_and_by_nobody_else(tasks: TaskStore) -> None:
    task_id = await create(tasks)
    found = await tasks.find(ALICE, task_id)
    assert found is not None
    assert found.status == "working"
    assert await tasks.find(BOB, task_id) is None
    assert await tasks.find(Owner(ALICE.digest, grant_id="another-grant"), task_id) is None
    assert await tasks.find(Owner(ALICE.digest), task_id) is None  # the same user, no grant
    assert await tasks.scopes(ALICE, task_id) == {"mcp:tools:read"}
    assert await tasks.scopes(BOB, task_id) is None


async def test_ids_of_another_shape_are_never_looked_up(tasks: TaskStore) -> None:
    for odd in ("", "x", "{slot}" + "a" * 37, "a" * 4096, "../" * 20):
        assert await tasks.read(odd) is None
        assert await tasks.scopes(ALICE, odd) is None


async def test_a_lapsed_lease_ends_the_task_as_failed_and_the_late_runner_cannot_change_it(
    tasks: TaskStore, clock: Clock
) -> None:
    task_id = await create(tasks)
    clock.now += LEASE / 2
    assert (await tasks.read(task_id)).outcome is None  # type: ignore[union-attr]
    clock.now += LEASE
    lapsed = await tasks.read(task_id)
    assert lapsed is not None
    assert lapsed.status == "failed"
    assert lapsed.detailed()["error"] == {"code": -32603, "message": LEASE_LAPSED_MESSAGE}
    late = TaskOutcome(status="completed", result={"content": []}, at=clock.now)
    assert await tasks.finish(lapsed.meta, task_id, late) is False
    assert (await tasks.read(task_id)).status == "failed"  # type: ignore[union-attr]


async def test_a_renewed_lease_keeps_the_task_alive(tasks: TaskStore, clock: Clock) -> None:
    task_id = await create(tasks)
    snapshot = await tasks.read(task_id)
    assert snapshot is not None
    for _ in range(5):
        clock.now += LEASE / 2
        await tasks.renew_lease(snapshot.meta, task_id, clock.now + LEASE)
        assert (await tasks.read(task_id)).status == "working"  # type: ignore[union-attr]


async def test_the_first_outcome_wins(tasks: TaskStore, clock: Clock) -> None:
    task_id = await create(tasks)
    meta = (await tasks.read(task_id)).meta  # type: ignore[union-attr]
    cancelled = TaskOutcome(status="cancelled", at=clock.now)
    completed = TaskOutcome(status="completed", result={"content": []}, at=clock.now)
    assert await tasks.finish(meta, task_id, cancelled) is True
    assert await tasks.finish(meta, task_id, completed) is False
    assert (await tasks.read(task_id)).status == "cancelled"  # type: ignore[union-attr]


async def test_answers_count_as_soon_as_given_and_only_pending_requests_show(
    tasks: TaskStore, clock: Clock
) -> None:
    task_id = await create(tasks)
    meta = (await tasks.read(task_id)).meta  # type: ignore[union-attr]
    asking = TaskProgress(
        status="input_required",
        input_requests={"a": {"method": "elicitation/create"}, "b": {"method": "elicitation/create"}},
        updated_at=clock.now,
    )
    await tasks.set_progress(meta, task_id, asking)
    await tasks.save_answers(meta, task_id, {"a": {"action": "accept", "content": {}}})
    partly = await tasks.read(task_id)
    assert partly is not None
    assert partly.status == "input_required"
    assert list(partly.detailed()["inputRequests"]) == ["b"]
    await tasks.save_answers(meta, task_id, {"b": {"action": "decline"}})
    answered = await tasks.read(task_id)
    assert answered is not None
    assert answered.status == "working"  # every request answered: the runner resumes it
    assert await tasks.answers(task_id, ["a", "b"]) == {
        "a": {"action": "accept", "content": {}},
        "b": {"action": "decline"},
    }
    await tasks.drop_answers(task_id, ["a", "b"])
    assert await tasks.answers(task_id, ["a", "b"]) == {}


async def test_one_owner_keeps_at_most_the_limit_even_when_creating_all_at_once(tasks: TaskStore) -> None:
    outcomes = await asyncio.gather(*(create(tasks) for _ in range(12)), return_exceptions=True)
    created = [outcome for outcome in outcomes if isinstance(outcome, str)]
    refused = [outcome for outcome in outcomes if isinstance(outcome, TaskLimitReached)]
    assert len(created) + len(refused) == 12
    assert len(created) <= 3  # a burst may be refused more than needed, never less
    assert len(await tasks.owned(ALICE)) == len(created)
    for _ in range(3 - len(created)):  # one at a time, up to the limit and no further
        await create(tasks)
    with pytest.raises(TaskLimitReached):
        await create(tasks)
    assert len(await tasks.owned(ALICE)) == 3
    assert await create(tasks, BOB)  # the limit is per owner


async def test_a_task_and_its_result_are_gone_after_its_lifetime(tasks: TaskStore, clock: Clock) -> None:
    task_id = await create(tasks, ttl=0.3)
    meta = (await tasks.read(task_id)).meta  # type: ignore[union-attr]
    assert await tasks.finish(meta, task_id, TaskOutcome(status="completed", result={"x": 1}, at=clock.now))
    deadline = time.monotonic() + 5
    while await tasks.read(task_id) is not None:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert await tasks.outcome(task_id) is None
    assert await tasks.owned(ALICE) == []  # its entry in the owner's index expired with it


async def test_nothing_is_written_for_a_task_whose_lifetime_is_over(tasks: TaskStore, clock: Clock) -> None:
    task_id = await create(tasks, ttl=5)
    meta = (await tasks.read(task_id)).meta  # type: ignore[union-attr]
    clock.now += 10  # a runner or a client that has not noticed yet
    await tasks.set_progress(meta, task_id, TaskProgress(updated_at=clock.now))
    await tasks.save_answers(meta, task_id, {"a": {"action": "decline"}})
    assert await tasks.finish(meta, task_id, TaskOutcome(status="cancelled", at=clock.now)) is False
