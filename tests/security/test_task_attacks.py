"""Attacks on the tasks extension: what a caller with a token can make the server store and look up.

A task keeps state and a result for up to TASK_MAX_TTL, on whichever instance or Redis. So one
caller must not be able to store without bound (many tasks, a huge result, huge answers), to
find anything of another caller by guessing ids, or to make the server look up an unbounded
number of ids. Each attack runs against real server processes in both modes and on both stores
(internal-memory, external-redis), with small limits; on Redis the keys themselves are counted.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx2
import pytest
from redis import Redis

from mcp_server.tasks.runner import TOO_LARGE_MESSAGE
from tests.e2e import oauth_flow
from tests.e2e.fixtures import EACH_MODE_AND_STORE
from tests.e2e.servers import Deployment
from tests.fixtures.tasks_client import TaskClient

# Real processes in each mode once and each store once (internal-memory, external-redis): a task's limits
# are the MCP server's, and the Redis keys are counted on external-redis.
PROCESS_DEPLOYMENTS = EACH_MODE_AND_STORE

LIMIT = 4
MAX_RESULT = 64 * 1024
DEPLOYMENT_ENV = {"TASKS_PER_PRINCIPAL": str(LIMIT), "TASK_MAX_RESULT_BYTES": str(MAX_RESULT)}


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(timeout=30, trust_env=False) as client:
        yield client


@pytest.fixture
async def caller(deployment: Deployment, http: httpx2.AsyncClient) -> TaskClient:
    """A caller of its own: the demo user through a client registered for this test."""
    every_scope = " ".join(oauth_flow.discover(deployment.mcp_url).metadata["scopes_supported"])
    grant = await asyncio.to_thread(oauth_flow.mint, deployment.mcp_url, scope=every_scope)
    return TaskClient(http, deployment.mcp_url, grant.tokens.access_token)


@pytest.fixture
def redis_keys(deployment: Deployment) -> Iterator[Any]:
    """`keys(pattern)`: the deployment's Redis keys matching a pattern (None on a memory store)."""
    if deployment.store != "redis":
        yield None
        return
    client = Redis.from_url(deployment.env["REDIS_URL"], decode_responses=True)
    prefix = deployment.env["REDIS_KEY_PREFIX"]
    try:
        yield lambda pattern: [key.removeprefix(prefix) for key in client.scan_iter(prefix + pattern)]
    finally:
        client.close()


async def test_one_caller_cannot_keep_more_tasks_than_the_limit(caller: TaskClient, redis_keys: Any) -> None:
    before = len(redis_keys("mcp:task:*")) if redis_keys else 0
    attempts = await asyncio.gather(
        *(caller.call("count_slowly", to=1000, seconds_per_step=0.5) for _ in range(3 * LIMIT))
    )
    created = [result["taskId"] for result in attempts if result.get("resultType") == "task"]
    refused = [result for result in attempts if result.get("isError")]
    assert len(created) <= LIMIT
    assert len(created) + len(refused) == 3 * LIMIT
    assert all(f"{LIMIT} tasks" in result["content"][0]["text"] for result in refused)
    while len(created) < LIMIT:  # a burst may be refused more than needed: fill up to the limit
        created.append(await caller.start("count_slowly", to=1000, seconds_per_step=0.5))
    one_more = await caller.call("count_slowly", to=1000, seconds_per_step=0.5)
    assert one_more.get("isError") is True
    listed = (await caller.call("tasks_list"))["structuredContent"]["tasks"]
    assert sorted(task["task_id"] for task in listed) == sorted(created)
    if redis_keys:  # a task is one hash (and, once it ends, one outcome string)
        assert len(redis_keys("mcp:task:*")) - before == LIMIT
    for task_id in created:
        await caller.cancel(task_id)


async def test_a_result_larger_than_the_limit_fails_the_task_and_is_not_stored(
    caller: TaskClient, deployment: Deployment
) -> None:
    label = "x" * (4 * MAX_RESULT)
    task_id = await caller.start("slow_compute", seconds=0.3, label=label)
    failed = await caller.finished(task_id)
    assert failed["status"] == "failed"
    assert failed["error"] == {"code": -32603, "message": TOO_LARGE_MESSAGE}
    assert "result" not in failed
    if deployment.store == "redis":  # what is kept is the small failure, not the result
        client = Redis.from_url(deployment.env["REDIS_URL"], decode_responses=True)
        prefix = deployment.env["REDIS_KEY_PREFIX"]
        try:
            outcome = client.get(f"{prefix}mcp:task:{{{task_id}}}:outcome")
            fields = client.hgetall(f"{prefix}mcp:task:{{{task_id}}}")
        finally:
            client.close()
        assert outcome is not None
        assert len(outcome) < 1024
        assert "xxxx" not in outcome
        assert all(len(value) < MAX_RESULT for value in fields.values())


async def test_answers_that_are_too_large_or_not_asked_for_are_refused_and_not_stored(
    caller: TaskClient, deployment: Deployment
) -> None:
    task_id = await caller.start("draft_report", steps=2, seconds_per_step=0.05)
    await caller.wait_for(task_id, lambda task: task["status"] == "input_required")
    huge = {"title": {"action": "accept", "content": {"title": "x" * (100 * 1024)}}}
    status, error = await caller.error("tasks/update", {"taskId": task_id, "inputResponses": huge})
    assert (status, error["code"]) == (400, -32602)
    unasked = {f"key-{n}": {"action": "accept", "content": {"title": "y" * 1000}} for n in range(200)}
    assert (await caller.update(task_id, unasked))["resultType"] == "complete"  # ignored (SEP-2663)
    still = await caller.get(task_id)
    assert still["status"] == "input_required"
    assert list(still["inputRequests"]) == ["title"]
    if deployment.store == "redis":
        client = Redis.from_url(deployment.env["REDIS_URL"], decode_responses=True)
        try:
            fields = client.hkeys(f"{deployment.env['REDIS_KEY_PREFIX']}mcp:task:{{{task_id}}}")
        finally:
            client.close()
        assert sorted(fields) == ["lease", "meta", "progress"]  # no answer of any kind was kept
    await caller.cancel(task_id)


async def test_guessed_and_malformed_task_ids_find_nothing(caller: TaskClient) -> None:
    mine = await caller.start("count_slowly", to=1000, seconds_per_step=0.5)
    guesses = [secrets.token_urlsafe(32) for _ in range(50)]
    guesses += [mine[:-1] + ("A" if mine[-1] != "A" else "B"), mine.upper(), mine + "A"]
    guesses += ["{" + mine[1:-1] + "}", "*", "mcp:task:*", "x" * 10_000, "\u0000" * 43, "é" * 43]
    for guess in guesses:
        status, error = await caller.error("tasks/get", {"taskId": guess})
        assert (status, error["code"]) == (400, -32602), guess[:50]
    assert (await caller.get(mine))["taskId"] == mine
    await caller.cancel(mine)


async def test_a_listen_request_naming_thousands_of_ids_watches_only_a_few(caller: TaskClient) -> None:
    mine = await caller.start("count_slowly", to=1000, seconds_per_step=0.5)
    decoys = [secrets.token_urlsafe(32) for _ in range(5000)]

    first = await caller.listen({"taskIds": [mine, *decoys]}, lambda received: bool(received))
    assert first[0]["params"]["notifications"]["taskIds"] == [mine]
    # Past the first few ids nothing is looked up at all, the caller's own task included.
    buried = await caller.listen({"taskIds": [*decoys, mine]}, lambda received: bool(received))
    assert buried[0]["params"]["notifications"]["taskIds"] == []
    await caller.cancel(mine)
