"""Long-running tools, the demo of tasks (docs/tasks.md): a count and a job that asks mid-way.

- `count_slowly` counts up, one number per `seconds_per_step`, reporting each step. A client of the
  tasks extension gets a task at once and watches the count in the task's status message; it can
  cancel it (tasks/cancel stops the count). Any other client gets a plain call with progress
  notifications (task="optional").
- `draft_report` works through its steps and, halfway, asks the user how to title the report:
  the task waits as `input_required` until the client answers through tasks/update, then goes on
  and saves the report as one of the user's notes, so it needs `notes:write` (checked when the
  task is created and again whenever it is read) (task="required": without the extension there
  is no way to wait for the user that long).

Both are bounded (steps, step length), like everything a caller can make the server compute.
"""

from __future__ import annotations

import asyncio
from typing import Any

from mcp_types import ElicitResult, InputRequiredResult
from pydantic import BaseModel, Field

from mcp_server.features.kit import (
    READ_ONLY,
    WRITES,
    ToolContext,
    ToolError,
    Tools,
    answer_as,
    caller_subject,
    caller_tenant,
    elicit_form,
    gather,
    report_progress,
)
from mcp_server.features.notes import add_note
from shared.scopes import NOTES_WRITE
from shared.storage import Store

MAX_COUNT = 1000
MIN_STEP, MAX_STEP = 0.01, 10.0
MAX_STEPS = 100

TITLE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"title": {"type": "string", "description": "A title for the report", "maxLength": 200}},
    "required": ["title"],
}


class Count(BaseModel):
    counted_to: int


class Report(BaseModel):
    title: str = Field(description="What the user called it, halfway through")
    steps: int
    note_id: str = Field(description="The note the report was saved as (notes_list shows it)")


def register(tools: Tools, store: Store) -> None:
    @tools.add(annotations=READ_ONLY, task="optional", title="Count slowly")
    async def count_slowly(to: int, ctx: ToolContext, seconds_per_step: float = 1.0) -> Count:
        """Count from 1 to `to` (at most 1000), one number per step, reporting each: a long-running
        task you can watch and cancel."""
        if not 1 <= to <= MAX_COUNT:
            raise ToolError(f"to must be between 1 and {MAX_COUNT}")
        if not MIN_STEP <= seconds_per_step <= MAX_STEP:
            raise ToolError(f"seconds_per_step must be between {MIN_STEP} and {MAX_STEP}")
        for number in range(1, to + 1):
            await asyncio.sleep(seconds_per_step)
            await report_progress(ctx, number, to, f"Counted to {number}")
        return Count(counted_to=to)

    @tools.add(scopes=[NOTES_WRITE], annotations=WRITES, task="required", title="Draft a report")
    async def draft_report(ctx: ToolContext, steps: int = 6, seconds_per_step: float = 0.5) -> Report:
        """Draft a report step by step, asking you halfway what to title it, and save it to your
        notes (a task that waits for your answer)."""
        if not 2 <= steps <= MAX_STEPS:
            raise ToolError(f"steps must be between 2 and {MAX_STEPS}")
        if not MIN_STEP <= seconds_per_step <= MAX_STEP:
            raise ToolError(f"seconds_per_step must be between {MIN_STEP} and {MAX_STEP}")
        title = ""
        for step in range(1, steps + 1):
            await asyncio.sleep(seconds_per_step)
            await report_progress(ctx, step, steps, "Working")
            if step == steps // 2:
                question = elicit_form(
                    f"Halfway through ({step} of {steps} steps): title the report?", TITLE_SCHEMA
                )
                answers = await gather(ctx, {"title": question})
                if isinstance(answers, InputRequiredResult):  # not a task: cannot happen (task="required")
                    raise ToolError("This tool runs as a task only")
                answer = answer_as(answers, "title", ElicitResult)
                if answer.action != "accept":
                    raise ToolError("You declined to title the report; stopped halfway")
                title = str((answer.content or {}).get("title", "")).strip()[:200] or "Untitled"
        text = f"{title}: a report in {steps} steps"
        note = await add_note(store, caller_subject(ctx), text, limit=caller_tenant(ctx).note_limit)
        return Report(title=title, steps=steps, note_id=note.id)
