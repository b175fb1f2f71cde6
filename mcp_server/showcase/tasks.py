"""The tasks extension's conformance fixtures (the suite's `tasks-*` scenarios), under its names.

`greet` never runs as a task; `slow_compute`, `protocol_error_job`, `confirm_delete` and
`multi_input` may (task="optional"); `failing_job` and `test_tool_with_task` must
(task="required": a client without the extension gets -32021). What each shows:
- `slow_compute`: a plain long call; `seconds: 0` answers at once even to a task client (the
  immediate-result shortcut), anything longer becomes a task, which tasks/cancel stops.
- `failing_job`: a tool error (`isError: true`) is a *completed* task, not a failed one.
- `protocol_error_job`: a JSON-RPC error raised in the task is a *failed* task with that error.
- `confirm_delete`, `multi_input`: a task asking the client mid-way (`gather`), one request or two
  at once; the task waits as `input_required` until tasks/update answers every key.
- `test_tool_with_task`: multi round-trip input *before* the task (an `InputRequiredResult`
  while there is no task yet), then the task, whose result carries the gathered answer.

The app's own long-running tools are in `mcp_server/features/long_running.py`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, ElicitResult, InputRequiredResult, TextContent

from mcp_server.client_input import input_required
from mcp_server.features.kit import (
    ASKS_CLIENT,
    READ_ONLY,
    ToolContext,
    ToolError,
    Tools,
    answer_as,
    become_task,
    elicit_form,
    gather,
)
from mcp_server.showcase.interactive import NAME_SCHEMA

MAX_SECONDS = 600

CONFIRM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"confirm": {"type": "boolean", "description": "Go ahead"}},
    "required": ["confirm"],
}


def _text(text: str) -> TextContent:
    return TextContent(type="text", text=text)


def _accepted(answer: ElicitResult, field: str) -> Any:
    return (answer.content or {}).get(field) if answer.action == "accept" else None


def register(tools: Tools) -> None:
    @tools.add(annotations=READ_ONLY)
    async def greet(name: str) -> str:
        """Greet someone by name, at once (never a task)."""
        return f"Hello, {name}!"

    @tools.add(annotations=READ_ONLY, task="optional")
    async def slow_compute(seconds: float, label: str = "") -> str:
        """Wait the given number of seconds (at most 600), then answer: a task for clients of the
        tasks extension, unless it is immediate."""
        if not 0 <= seconds <= MAX_SECONDS:
            raise ToolError(f"seconds must be between 0 and {MAX_SECONDS}")
        await asyncio.sleep(seconds)
        return f"Computed {label or 'nothing'} in {seconds:g} s"

    @tools.add(annotations=READ_ONLY, task="required")
    async def failing_job() -> str:
        """Run for a second, then fail with a tool error (the task completes, with isError)."""
        await asyncio.sleep(1)
        raise ToolError("The job failed: this one always does")

    @tools.add(annotations=READ_ONLY, task="optional")
    async def protocol_error_job(ctx: ToolContext) -> str:
        """Become a task, then fail with a JSON-RPC error (the task fails, carrying it)."""
        await become_task(ctx)
        raise MCPError(code=INTERNAL_ERROR, message="The job hit an internal error")

    @tools.add(annotations=ASKS_CLIENT, task="optional")
    async def confirm_delete(filename: str, ctx: ToolContext) -> TextContent | InputRequiredResult:
        """Ask the user to confirm deleting a file (nothing is deleted: a demonstration)."""
        answers = await gather(ctx, {"confirm": elicit_form(f"Delete {filename}?", CONFIRM_SCHEMA)})
        if isinstance(answers, InputRequiredResult):
            return answers  # a plain 2026 call: the client answers and retries
        confirmed = _accepted(answer_as(answers, "confirm", ElicitResult), "confirm") is True
        return _text(f"Would delete {filename}" if confirmed else f"Kept {filename}")

    @tools.add(annotations=ASKS_CLIENT, task="optional")
    async def multi_input(ctx: ToolContext) -> TextContent | InputRequiredResult:
        """Ask two questions at once and report both answers."""
        questions = {
            "first": elicit_form("First name?", NAME_SCHEMA),
            "second": elicit_form("Second name?", NAME_SCHEMA),
        }
        answers = await gather(ctx, questions)
        if isinstance(answers, InputRequiredResult):
            return answers
        names = [_accepted(answer_as(answers, key, ElicitResult), "name") for key in questions]
        return _text("Answers: " + ", ".join(str(name) for name in names))

    @tools.add(annotations=ASKS_CLIENT, task="required")
    async def test_tool_with_task(ctx: ToolContext) -> TextContent | InputRequiredResult:
        """Ask for your name (before the task exists), then greet you from a task."""
        question = {"user_name": elicit_form("What is your name?", NAME_SCHEMA)}
        if "user_name" not in (ctx.input_responses or {}):
            return input_required(ctx, question)  # round 1: answered synchronously, no task yet
        answers = await gather(ctx, question)  # round 2 carries the answer: no waiting
        if isinstance(answers, InputRequiredResult):
            return answers
        await become_task(ctx)
        name = _accepted(answer_as(answers, "user_name", ElicitResult), "name")
        await asyncio.sleep(0.5)
        return _text(f"Hello, {name}! (from a task)")
