"""The tasks extension on the protected server: the demo tools, input mid-way, cancellation,
status notifications, scopes checked at creation and on every read, and the protocol's errors.

Every test runs against a real MCP server with a real authorization server beside it, once per
token kind (JWT, introspection, the in-process AS with tokens from the real login flow).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shared.scopes import NOTES_READ, NOTES_WRITE, TOOLS_READ
from tests.fixtures.tasks_client import TASKS, WITHOUT_TASKS, TaskClient
from tests.integration.rs.conftest import FORGEABLE_KINDS, LEGACY, Mcp, Rs, message

WRITER = [TOOLS_READ, NOTES_READ, NOTES_WRITE]


def client(rs: Rs, token: str | None) -> TaskClient:
    return TaskClient(rs.http, "/mcp", token)


async def test_a_count_becomes_a_task_that_shows_its_progress_and_stops_when_cancelled(rs: Rs) -> None:
    tasks = client(rs, await rs.token("alice"))
    created = await tasks.call("count_slowly", to=1000, seconds_per_step=0.02)
    assert created["resultType"] == "task"
    assert created["status"] == "working"
    assert len(created["taskId"]) == 43  # 256 random bits
    assert isinstance(created["ttlMs"], int)
    assert created["ttlMs"] > 0
    assert not {"result", "error", "inputRequests", "requestState"} & created.keys()
    task_id = created["taskId"]

    counting = await tasks.wait_for(task_id, lambda task: "Counted to" in task.get("statusMessage", ""))
    assert counting["status"] == "working"
    ack = await tasks.cancel(task_id)
    assert ack["resultType"] == "complete"
    assert not {"taskId", "status", "result", "error", "inputRequests"} & ack.keys()
    cancelled = await tasks.get(task_id)  # recorded before the acknowledgement
    assert cancelled["status"] == "cancelled"
    assert "result" not in cancelled
    # Terminal means terminal: the count did not finish behind the client's back.
    assert (await tasks.get(task_id))["status"] == "cancelled"
    assert (await tasks.cancel(task_id))["resultType"] == "complete"  # acknowledged, unchanged
    assert (await tasks.get(task_id))["status"] == "cancelled"


async def test_a_short_count_completes_with_its_result_inlined(rs: Rs) -> None:
    tasks = client(rs, await rs.token("alice"))
    task_id = await tasks.start("count_slowly", to=3, seconds_per_step=0.05)
    done = await tasks.finished(task_id)
    assert done["status"] == "completed"
    assert done["resultType"] == "complete"
    assert done["result"]["structuredContent"] == {"counted_to": 3}
    assert done["result"]["isError"] is False


async def test_without_the_extension_the_count_is_a_plain_call(rs: Rs) -> None:
    tasks = client(rs, await rs.token("alice"))
    tasks.capabilities = dict(WITHOUT_TASKS)
    result = await tasks.call("count_slowly", to=2, seconds_per_step=0.01)
    assert "taskId" not in result
    assert result["structuredContent"] == {"counted_to": 2}


async def test_the_report_task_waits_for_its_title_then_saves_it_as_a_note(rs: Rs) -> None:
    user = rs.fresh_user()
    token = await rs.token(user, WRITER)
    tasks = client(rs, token)
    task_id = await tasks.start("draft_report", steps=2, seconds_per_step=0.01)

    waiting = await tasks.wait_for(task_id, lambda task: task["status"] == "input_required")
    assert list(waiting["inputRequests"]) == ["title"]
    assert waiting["inputRequests"]["title"]["method"] == "elicitation/create"
    assert "Halfway" in waiting["inputRequests"]["title"]["params"]["message"]
    # Still waiting on a second look: nobody answered yet.
    assert (await tasks.get(task_id))["status"] == "input_required"

    ack = await tasks.update(task_id, {"title": {"action": "accept", "content": {"title": "Q4 numbers"}}})
    assert ack["resultType"] == "complete"
    assert not {"taskId", "status", "result"} & ack.keys()
    done = await tasks.finished(task_id)
    assert done["status"] == "completed", done
    report = done["result"]["structuredContent"]
    assert report["title"] == "Q4 numbers"
    notes = (await Mcp(rs.http, LEGACY).call_tool("notes_list", token))["structuredContent"]["notes"]
    assert [note["id"] for note in notes] == [report["note_id"]]
    assert notes[0]["text"] == "Q4 numbers: a report in 2 steps"


async def test_declining_the_question_completes_the_task_with_a_tool_error(rs: Rs) -> None:
    tasks = client(rs, await rs.token(rs.fresh_user(), WRITER))
    task_id = await tasks.start("draft_report", steps=2, seconds_per_step=0.01)
    await tasks.wait_for(task_id, lambda task: task["status"] == "input_required")
    await tasks.update(task_id, {"title": {"action": "decline"}})
    done = await tasks.finished(task_id)
    assert done["status"] == "completed"  # a tool error is not a protocol failure (SEP-2663)
    assert done["result"]["isError"] is True
    assert "declined" in done["result"]["content"][0]["text"]


async def test_an_answer_of_the_wrong_kind_is_refused_and_the_task_keeps_waiting(rs: Rs) -> None:
    tasks = client(rs, await rs.token(rs.fresh_user(), WRITER))
    task_id = await tasks.start("draft_report", steps=2, seconds_per_step=0.01)
    await tasks.wait_for(task_id, lambda task: task["status"] == "input_required")
    status, error = await tasks.error(
        "tasks/update",
        {"taskId": task_id, "inputResponses": {"title": {"roots": "not an elicitation result"}}},
    )
    assert (status, error["code"]) == (400, -32602)
    # Keys never asked are ignored (SEP-2663), and the question is still open.
    assert (await tasks.update(task_id, {"nonsense": {"action": "accept"}}))["resultType"] == "complete"
    still = await tasks.get(task_id)
    assert still["status"] == "input_required"
    assert list(still["inputRequests"]) == ["title"]
    await tasks.cancel(task_id)


async def test_a_required_task_tool_refuses_a_client_without_the_extension(rs: Rs) -> None:
    tasks = client(rs, await rs.token(rs.fresh_user(), WRITER))
    tasks.capabilities = dict(WITHOUT_TASKS)
    status, error = await tasks.error("tools/call", {"name": "draft_report", "arguments": {}})
    assert (status, error["code"]) == (400, -32021)
    assert error["data"]["requiredCapabilities"] == {"extensions": {TASKS: {}}}
    for method in ("tasks/get", "tasks/update", "tasks/cancel"):
        status, error = await tasks.error(method, {"taskId": "x" * 43, "inputResponses": {}})
        assert (status, error["code"]) == (400, -32021), method


async def test_creating_a_task_needs_its_tools_scopes(rs: Rs) -> None:
    reader = client(rs, await rs.token("alice", [TOOLS_READ]))
    response = await reader.post("tools/call", {"name": "draft_report", "arguments": {}})
    assert response.status_code == 403
    assert NOTES_WRITE in response.headers["www-authenticate"]


@pytest.mark.parametrize("rs", FORGEABLE_KINDS, indirect=True)
async def test_reading_a_task_needs_its_tools_scopes_again(rs: Rs) -> None:
    # One principal (same issuer, subject and client); the second token lost notes:write.
    writer = client(rs, await rs.token("alice", WRITER, client_id="reports-app"))
    task_id = await writer.start("draft_report", steps=2, seconds_per_step=0.01)
    narrowed = client(rs, await rs.token("alice", [TOOLS_READ, NOTES_READ], client_id="reports-app"))
    for method, params in (
        ("tasks/get", {"taskId": task_id}),
        ("tasks/update", {"taskId": task_id, "inputResponses": {}}),
        ("tasks/cancel", {"taskId": task_id}),
    ):
        response = await narrowed.post(method, params)
        assert response.status_code == 403, (method, response.text)
        assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
        assert NOTES_WRITE in response.headers["www-authenticate"]
    assert (await writer.get(task_id))["taskId"] == task_id  # the full token still reads it
    await writer.cancel(task_id)


async def test_the_routing_header_must_name_the_task(rs: Rs) -> None:
    tasks = client(rs, await rs.token("alice"))
    task_id = await tasks.start("count_slowly", to=1000, seconds_per_step=0.05)
    for wrong in ("another-task", None):  # another name, or none at all
        response = await tasks.post("tasks/get", {"taskId": task_id}, headers={"mcp-name": wrong})
        assert response.status_code == 400, response.text
        assert message(response)["error"]["code"] == -32020
    await tasks.cancel(task_id)


async def test_an_unknown_task_is_invalid_params_and_removed_methods_are_not_found(rs: Rs) -> None:
    tasks = client(rs, await rs.token("alice"))
    for method in ("tasks/get", "tasks/update", "tasks/cancel"):
        status, error = await tasks.error(method, {"taskId": "no-such-task", "inputResponses": {}})
        assert (status, error["code"]) == (400, -32602), method
        assert error["message"] == "Failed to retrieve task: Task not found"
    for removed in ("tasks/result", "tasks/list"):
        status, error = await tasks.error(removed, {"taskId": "no-such-task"})
        assert (status, error["code"]) == (404, -32601), removed


async def test_task_methods_do_not_exist_on_the_2025_revision(rs: Rs) -> None:
    legacy = Mcp(rs.http, LEGACY)
    response = await legacy.post("tasks/get", {"taskId": "x" * 43}, await rs.token("alice"))
    assert message(response)["error"]["code"] == -32601


async def test_a_listen_stream_reports_each_change_of_the_named_task_until_it_ends(rs: Rs) -> None:
    tasks = client(rs, await rs.token(rs.fresh_user(), WRITER))
    task_id = await tasks.start("draft_report", steps=2, seconds_per_step=0.01)

    def ended(received: list[dict[str, Any]]) -> bool:
        states = [m["params"] for m in received if m.get("method") == "notifications/tasks"]
        return bool(states) and states[-1]["status"] in ("completed", "failed", "cancelled")

    stream = asyncio.ensure_future(tasks.listen({"taskIds": [task_id, "x" * 43]}, ended))
    await tasks.wait_for(task_id, lambda task: task["status"] == "input_required")
    await tasks.update(task_id, {"title": {"action": "accept", "content": {"title": "Streamed"}}})
    received = await stream

    ack = received[0]
    assert ack["method"] == "notifications/subscriptions/acknowledged"
    assert ack["params"]["notifications"]["taskIds"] == [task_id]  # an unknown id is not watched
    states = [m["params"] for m in received if m.get("method") == "notifications/tasks"]
    assert {state["taskId"] for state in states} == {task_id}
    assert states[-1]["status"] == "completed"
    assert states[-1]["result"]["structuredContent"]["title"] == "Streamed"
    # Each notification is what tasks/get answers at that moment.
    final = await tasks.get(task_id)
    assert _without_envelope(states[-1]) == _without_envelope(final)


def _without_envelope(task: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in task.items() if key not in ("_meta", "resultType")}


async def test_listening_for_tasks_needs_the_extension(rs: Rs) -> None:
    tasks = client(rs, await rs.token("alice"))
    tasks.capabilities = dict(WITHOUT_TASKS)
    received = await tasks.listen({"taskIds": ["x" * 43]}, lambda received: bool(received), within=10)
    assert received[0]["error"]["code"] == -32021


async def test_no_token_no_tasks(rs: Rs) -> None:
    anonymous = client(rs, None)
    response = await anonymous.post("tasks/get", {"taskId": "x" * 43})
    assert response.status_code == 401
