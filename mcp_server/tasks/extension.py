"""`io.modelcontextprotocol/tasks` (SEP-2663) on the SDK's extension interface (SEP-2133).

What it adds to the MCPServer, and nothing else:
- a `tools/call` interceptor: a tool registered with task support, called on 2026-07-28 by a
  client that declares the extension in the request's capabilities, runs through the
  `TaskRunner` (it answers at once, or becomes a task: `resultType: "task"`). Without the
  extension a tool whose support is "required" is refused with -32021 and
  `requiredCapabilities`; an "optional" one runs as a plain call.
- `tasks/get` (the DetailedTask, the result inlined when completed), `tasks/update` (answers to
  pending input requests) and `tasks/cancel`, on 2026-07-28 only (earlier revisions answer
  -32601, as do the removed `tasks/result` and `tasks/list`, which are simply not served).

Every task method checks, in order: the `Mcp-Name` header equals `params.taskId` (SEP-2663 routing
header; -32020 and HTTP 400 otherwise, like the SDK's own check for `tools/call`), the request
declares the extension (-32021), and the task exists and belongs to the caller (`store.Owner`):
otherwise -32602 "Task not found", the same answer for another caller's task as for one that never
existed. `tasks/update` and `tasks/cancel` acknowledge with an empty result; a terminal task is
acknowledged and left as it is.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.extension import Extension, MethodBinding
from mcp.server.mcpserver import require_client_extension
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import MCP_NAME_HEADER, decode_header_value
from mcp_types import HEADER_MISMATCH, INTERNAL_ERROR, INVALID_PARAMS, CallToolRequestParams, RequestParams
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import Field, ValidationError

from mcp_server.client_input import ANSWER_TYPES
from mcp_server.protection.principal import current_principal
from mcp_server.protection.scopes import ExtraScopes
from mcp_server.tasks.runner import TaskRunner
from mcp_server.tasks.store import Owner, TaskSnapshot, TaskStore
from shared.storage.base import StorageUnavailable
from shared.validation import Principal

TASKS_EXTENSION = "io.modelcontextprotocol/tasks"
TASK_METHODS = frozenset({"tasks/get", "tasks/update", "tasks/cancel"})
MAX_ANSWER_BYTES = 64 * 1024  # one answer to one input request, as stored until the task takes it
NOT_FOUND = "Failed to retrieve task: Task not found"

TaskSupport = Literal["optional", "required"]


@dataclass(frozen=True)
class TaskTool:
    """How a tool takes part in tasks: whether it may or must run as one, for how long at most,
    and the scopes it needs (kept with each task, checked again on every task method)."""

    support: TaskSupport
    scopes: frozenset[str]
    ttl: float | None = None


ToolTaskLookup = Callable[[str], TaskTool | None]
"""The task registration of a tool, by name; None for a tool that never runs as a task."""


class TaskParams(RequestParams):
    task_id: str = Field(max_length=256)


class UpdateTaskParams(TaskParams):
    input_responses: dict[str, Any] = Field(default_factory=dict)


def negotiated(ctx: ServerRequestContext[Any, Any]) -> bool:
    """The request is 2026-07-28 and declares the tasks extension in its capabilities."""
    if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
        return False
    capabilities = ctx.session.client_capabilities
    return capabilities is not None and TASKS_EXTENSION in (capabilities.extensions or {})


class TasksExtension(Extension):
    identifier = TASKS_EXTENSION

    def __init__(self, runner: TaskRunner, lookup: ToolTaskLookup) -> None:
        self._runner = runner
        self._store = runner.store
        self._lookup = lookup

    def methods(self) -> Sequence[MethodBinding]:
        modern = frozenset(MODERN_PROTOCOL_VERSIONS)
        return (
            MethodBinding("tasks/get", TaskParams, self._get, protocol_versions=modern),
            MethodBinding("tasks/update", UpdateTaskParams, self._update, protocol_versions=modern),
            MethodBinding("tasks/cancel", TaskParams, self._cancel, protocol_versions=modern),
        )

    async def intercept_tool_call(
        self, params: CallToolRequestParams, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        tool = self._lookup(params.name)
        if tool is None:
            return await call_next(ctx)
        if not negotiated(ctx):
            if tool.support == "required":
                require_client_extension(ctx, TASKS_EXTENSION)
            return await call_next(ctx)
        ttl = self._store.max_ttl if tool.ttl is None else tool.ttl
        with _storage_errors():
            return await self._runner.run(
                ctx, call_next, owner=_owner(ctx), tool=params.name, scopes=tool.scopes, ttl=ttl
            )

    # -- the task methods --------------------------------------------------------------------

    async def _get(self, ctx: ServerRequestContext[Any, Any], params: TaskParams) -> dict[str, Any]:
        snapshot = await self._find(ctx, params)
        return {"resultType": "complete", **snapshot.detailed()}

    async def _update(self, ctx: ServerRequestContext[Any, Any], params: UpdateTaskParams) -> dict[str, Any]:
        snapshot = await self._find(ctx, params)
        pending = snapshot.pending
        accepted: dict[str, dict[str, Any]] = {}
        for key, answer in params.input_responses.items():
            request = pending.get(key)
            if request is None:
                continue  # never asked, answered already, or the task moved on: ignored (SEP-2663)
            accepted[key] = _checked_answer(key, request, answer)
        if accepted:
            with _storage_errors():
                await self._store.save_answers(snapshot.meta, snapshot.task_id, accepted)
            self._runner.poke(snapshot.task_id)
        return {"resultType": "complete"}

    async def _cancel(self, ctx: ServerRequestContext[Any, Any], params: TaskParams) -> dict[str, Any]:
        snapshot = await self._find(ctx, params)
        if snapshot.outcome is None:
            with _storage_errors():
                await self._runner.cancel(snapshot)
        return {"resultType": "complete"}

    async def _find(self, ctx: ServerRequestContext[Any, Any], params: TaskParams) -> TaskSnapshot:
        """The caller's task, after the checks every task method makes (see the module)."""
        _check_routing_header(ctx, params.task_id)
        require_client_extension(ctx, TASKS_EXTENSION)
        with _storage_errors():
            snapshot = await self._store.find(_owner(ctx), params.task_id)
        if snapshot is None:
            raise MCPError(code=INVALID_PARAMS, message=NOT_FOUND)
        return snapshot


def task_scopes(store: TaskStore) -> ExtraScopes:
    """For the scope check in front of the SDK: a task method needs the scopes of the task's tool
    (checked when the task was created, and again on every read of it, its result included), if
    the caller owns the task; nothing extra otherwise (the method then answers "not found")."""

    async def needed(principal: Principal, message: Mapping[str, Any]) -> frozenset[str]:
        params = message.get("params")
        task_id = params.get("taskId") if isinstance(params, Mapping) else None
        if not isinstance(task_id, str):
            return frozenset()
        try:
            return await store.scopes(Owner.of(principal), task_id) or frozenset()
        except StorageUnavailable:
            return frozenset()  # the method itself answers that the storage is down

    return ExtraScopes(TASK_METHODS, needed)


def _owner(ctx: ServerRequestContext[Any, Any]) -> Owner:
    return Owner.of(current_principal(ctx))


def _check_routing_header(ctx: ServerRequestContext[Any, Any], task_id: str) -> None:
    """On HTTP, `Mcp-Name` must carry the task id (what a load balancer routes on)."""
    headers = getattr(ctx.request, "headers", None)
    if headers is None:
        return  # stdio: no headers to route on
    raw = headers.get(MCP_NAME_HEADER)
    value = decode_header_value(raw.strip() if isinstance(raw, str) else None)
    if value != task_id:
        raise MCPError(code=HEADER_MISMATCH, message=f"{MCP_NAME_HEADER} header does not match params.taskId")


def _checked_answer(key: str, request: dict[str, Any], answer: Any) -> dict[str, Any]:
    """The answer in its normal wire form, if it is a bounded, valid answer to `request`.

    Raises:
        MCPError: INVALID_PARAMS when it is too large or not a result of the request's kind.
    """
    if len(json.dumps(answer, separators=(",", ":"))) > MAX_ANSWER_BYTES:
        raise MCPError(
            code=INVALID_PARAMS, message=f"inputResponses[{key!r}] is larger than {MAX_ANSWER_BYTES} bytes"
        )
    answer_type = ANSWER_TYPES.get(str(request.get("method")))
    if answer_type is None:
        raise MCPError(code=INTERNAL_ERROR, message="Internal error")
    try:
        parsed = answer_type.model_validate(answer)
    except ValidationError:
        raise MCPError(
            code=INVALID_PARAMS,
            message=f"inputResponses[{key!r}] does not answer a {request.get('method')} request",
        ) from None
    return parsed.model_dump(by_alias=True, mode="json", exclude_none=True)


@contextlib.contextmanager
def _storage_errors() -> Iterator[None]:
    """Storage down: a JSON-RPC internal error inviting a retry, not a crash."""
    try:
        yield
    except StorageUnavailable:
        raise MCPError(
            code=INTERNAL_ERROR, message="Storage is temporarily unavailable; retry shortly"
        ) from None
