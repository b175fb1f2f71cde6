"""A task belongs to who created it (issuer, subject and client): anyone else finds nothing.

For every task method (get, which carries the result; update; cancel), the listing tool and the
listen stream, another user and the same user through another client get exactly what a task id
that never existed gets. The owner, with another token of the same grant, still finds it. Every
token kind: JWT and introspection (client ids chosen by the test) and the in-process AS (each
real flow registers a client of its own).
"""

from __future__ import annotations

from typing import Any

from shared.scopes import NOTES_READ, TOOLS_READ
from tests.fixtures.tasks_client import TaskClient
from tests.integration.rs.conftest import Rs

NEVER_EXISTED = "A" * 43


async def principals(rs: Rs) -> tuple[TaskClient, dict[str, TaskClient]]:
    """The owner, and the others: another user, and the owner's user through another client."""
    owner_user, other_user = rs.fresh_user(), rs.fresh_user()
    if rs.token_kind == "internal":  # each token below comes from its own registered client
        owner = await rs.token(owner_user, [TOOLS_READ])
        same_user_other_client = await rs.token(owner_user, [TOOLS_READ, NOTES_READ])
        other = await rs.token(other_user, [TOOLS_READ])
    else:
        owner = await rs.token(owner_user, [TOOLS_READ], client_id="desktop-app")
        same_user_other_client = await rs.token(owner_user, [TOOLS_READ], client_id="web-app")
        other = await rs.token(other_user, [TOOLS_READ], client_id="desktop-app")
    others = {
        "another user": TaskClient(rs.http, "/mcp", other),
        "the same user through another client": TaskClient(rs.http, "/mcp", same_user_other_client),
    }
    return TaskClient(rs.http, "/mcp", owner), others


async def not_found(client: TaskClient, method: str, task_id: str) -> tuple[int, dict[str, Any]]:
    return await client.error(method, {"taskId": task_id, "inputResponses": {"title": {"action": "accept"}}})


async def listed_ids(client: TaskClient) -> list[str]:
    result = await client.call("tasks_list")
    return [task["task_id"] for task in result["structuredContent"]["tasks"]]


async def test_nobody_else_can_read_answer_cancel_list_or_watch_a_running_task(rs: Rs) -> None:
    owner, others = await principals(rs)
    task_id = await owner.start("count_slowly", to=1000, seconds_per_step=0.05)

    for who, other in others.items():
        for method in ("tasks/get", "tasks/update", "tasks/cancel"):
            theirs = await not_found(other, method, task_id)
            nothing = await not_found(other, method, NEVER_EXISTED)
            assert (
                theirs
                == nothing
                == (400, {"code": -32602, "message": "Failed to retrieve task: Task not found"})
            ), (
                who,
                method,
            )
        assert task_id not in await listed_ids(other), who
        received = await other.listen({"taskIds": [task_id]}, lambda messages: bool(messages))
        assert received[0]["params"]["notifications"]["taskIds"] == [], who

    # None of that touched it: still running, still listed, still the owner's to cancel.
    assert (await owner.get(task_id))["status"] == "working"
    assert task_id in await listed_ids(owner)
    await owner.cancel(task_id)
    assert (await owner.get(task_id))["status"] == "cancelled"


async def test_nobody_else_can_read_a_finished_tasks_result(rs: Rs) -> None:
    owner, others = await principals(rs)
    task_id = await owner.start("count_slowly", to=2, seconds_per_step=0.05)
    done = await owner.finished(task_id)
    assert done["result"]["structuredContent"] == {"counted_to": 2}
    for who, other in others.items():
        status, error = await not_found(other, "tasks/get", task_id)
        assert (status, error["code"]) == (400, -32602), who
        assert "result" not in error, who


async def test_the_owner_finds_the_task_with_another_token_of_the_same_grant(rs: Rs) -> None:
    first, refreshed = await rs.token_and_refreshed(rs.fresh_user())
    assert first != refreshed
    task_id = await TaskClient(rs.http, "/mcp", first).start("count_slowly", to=2, seconds_per_step=0.05)
    later = TaskClient(rs.http, "/mcp", refreshed)
    assert (await later.finished(task_id))["status"] == "completed"
    assert task_id in await listed_ids(later)
