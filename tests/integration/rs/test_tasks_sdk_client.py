"""The MCP SDK's own client drives tasks, through the client extension docs/tasks.md shows.

The code block `file=tasks_client.py` of docs/tasks.md is copied as written into a module and
handed to `mcp.client.Client(extensions=[...])`; `call_tool` then returns the final result of a
task, answers the questions the task asks on the way, and raises what a task ends with otherwise.
Against the protected server, every token kind.
"""

from __future__ import annotations

import asyncio
import importlib.util
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import ElicitResult

from shared.scopes import NOTES_READ, NOTES_WRITE, TOOLS_READ
from tests.fixtures.tasks_client import TaskClient
from tests.integration.rs.conftest import Rs

DOC = Path(__file__).resolve().parents[3] / "docs" / "tasks.md"
WRITER = [TOOLS_READ, NOTES_READ, NOTES_WRITE]


@pytest.fixture(scope="module")
def tasks_client(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    block = re.search(r"^```python file=tasks_client\.py\n(?P<code>.*?)^```$", DOC.read_text(), re.M | re.S)
    assert block, "docs/tasks.md lost its client example"
    path = Path(tmp_path_factory.mktemp("doc")) / "tasks_client.py"
    path.write_text(block["code"])
    spec = importlib.util.spec_from_file_location("tasks_client_from_the_docs", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the module's generic models through it
    spec.loader.exec_module(module)
    return module


async def decline(context: Any, params: Any) -> ElicitResult:
    return ElicitResult(action="decline")


@asynccontextmanager
async def sdk_client(rs: Rs, token: str, extension: Any) -> AsyncIterator[Client]:
    http = httpx2.AsyncClient(headers={"authorization": f"Bearer {token}"}, timeout=30, trust_env=False)
    async with http:
        transport = streamable_http_client(rs.mcp_url, http_client=http)
        async with Client(
            transport, mode="2026-07-28", elicitation_callback=decline, extensions=[extension]
        ) as c:
            yield c


async def test_call_tool_returns_the_result_of_the_task(rs: Rs, tasks_client: ModuleType) -> None:
    statuses: list[str] = []
    extension = tasks_client.Tasks(on_status=lambda task: statuses.append(task.status))
    async with sdk_client(rs, await rs.token("alice"), extension) as client:
        counted = await client.call_tool("count_slowly", {"to": 3, "seconds_per_step": 0.2})
    assert counted.is_error is False
    assert counted.structured_content == {"counted_to": 3}
    assert statuses[-1] == "completed"
    assert "working" in statuses  # it was a task, polled until done


async def test_the_task_asks_and_the_client_answers_through_the_extension(
    rs: Rs, tasks_client: ModuleType
) -> None:
    asked: list[tuple[str, str]] = []

    async def title_it(key: str, request: dict[str, Any]) -> dict[str, Any]:
        asked.append((key, request["method"]))
        return {"action": "accept", "content": {"title": "From the SDK"}}

    user = rs.fresh_user()
    async with sdk_client(rs, await rs.token(user, WRITER), tasks_client.Tasks(title_it)) as client:
        report = await client.call_tool("draft_report", {"steps": 2, "seconds_per_step": 0.05})
        notes = await client.call_tool("notes_list", {})
    assert asked == [("title", "elicitation/create")]
    assert report.structured_content is not None
    assert report.structured_content["title"] == "From the SDK"
    assert notes.structured_content is not None
    assert [note["id"] for note in notes.structured_content["notes"]] == [
        report.structured_content["note_id"]
    ]


async def test_a_failed_task_raises_its_error_and_a_cancelled_one_says_so(
    rs: Rs, tasks_client: ModuleType
) -> None:
    token = await rs.token("alice")
    async with sdk_client(rs, token, tasks_client.Tasks()) as client:
        with pytest.raises(MCPError) as failed:
            await client.call_tool("protocol_error_job", {})
    assert failed.value.code == -32603

    polled = asyncio.Event()
    seen: list[str] = []

    def on_status(task: Any) -> None:
        seen.append(task.task_id)
        polled.set()

    raw = TaskClient(rs.http, "/mcp", token)

    async def cancel_it_elsewhere() -> None:
        await polled.wait()  # the SDK client is polling the task: cancel it from another client
        await raw.cancel(seen[0])

    async with sdk_client(rs, token, tasks_client.Tasks(on_status=on_status)) as client:
        counting = client.call_tool("count_slowly", {"to": 100, "seconds_per_step": 0.1})
        outcomes = await asyncio.gather(counting, cancel_it_elsewhere(), return_exceptions=True)
    assert isinstance(outcomes[0], tasks_client.TaskCancelled)
    assert outcomes[1] is None
