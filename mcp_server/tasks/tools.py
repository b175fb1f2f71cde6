"""`tasks_list`: the caller's own tasks, for a client that lost track of its task ids.

SEP-2663 removed `tasks/list` (the conformance suite requires -32601 for it): a server cannot in
general tell which caller an id belongs to. This server can (`store.Owner`), so it offers the
listing as a tool instead, showing a caller its own tasks and nobody else's.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from mcp_server.features.kit import (
    READ_ONLY,
    ToolContext,
    Tools,
    current_principal,
    storage_errors_as_tool_errors,
)
from mcp_server.tasks.store import Owner, Status, TaskStore, iso


class TaskSummary(BaseModel):
    task_id: str
    tool: str
    status: Status
    status_message: str | None = None
    created_at: str = Field(description="ISO 8601, UTC")
    expires_at: str = Field(description="When the task and its result are forgotten (ISO 8601, UTC)")


class TaskList(BaseModel):
    tasks: list[TaskSummary] = Field(description="Your tasks, oldest first")


def register(tools: Tools, store: TaskStore) -> None:
    @tools.add(annotations=READ_ONLY, title="List my tasks")
    async def tasks_list(ctx: ToolContext) -> TaskList:
        """List your own tasks (running, or finished and not yet expired) with their status; read a
        result with tasks/get."""
        owner = Owner.of(current_principal(ctx))
        summaries: list[TaskSummary] = []
        with storage_errors_as_tool_errors():
            for task_id in await store.owned(owner):
                snapshot = await store.find(owner, task_id)
                if snapshot is None:
                    continue
                detailed = snapshot.detailed()
                summaries.append(
                    TaskSummary(
                        task_id=task_id,
                        tool=snapshot.meta.tool,
                        status=snapshot.status,
                        status_message=detailed.get("statusMessage"),
                        created_at=iso(snapshot.meta.created_at),
                        expires_at=iso(snapshot.meta.expires_at),
                    )
                )
        return TaskList(tasks=sorted(summaries, key=lambda summary: summary.created_at))
