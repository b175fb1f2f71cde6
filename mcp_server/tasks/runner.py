"""Running task-augmented tool calls: in this process, leased in the Store, stoppable, resumable.

A tool registered with task support is called as usual, but its body runs in a background
asyncio task from the start while the `tools/call` request waits for one of three things:

1. the body returns within IMMEDIATE_RESULT_WINDOW: its result is the answer, as for any tool
   (an immediate `CallToolResult`, or an `InputRequiredResult` for a multi round-trip request
   made before the task exists; SEP-2663 lets a server decide per request);
2. the body asks to become a task (`TaskHandle.become_task`, or asking the client for input with
   `client_input.gather`, which parks the task until `tasks/update` brings the answer);
3. the window passes: the call becomes a task.

In cases 2 and 3 the task is written to the Store (durably: `tasks/get` on any instance finds it
before the client has the handle) and the request answers `CreateTaskResult`. A supervisor then
watches the body: it renews the task's lease every third of TASK_LEASE_SECONDS, stops the body
when another instance recorded an outcome (tasks/cancel), when the grant the task was created
under has ended (AUTH_MODE=internal) or when the task's lifetime is over, and records the body's
result, its JSON-RPC error, or the failure of a result larger than TASK_MAX_RESULT_BYTES.

If this process dies, nobody renews the lease: the first reader after it lapses records the task
as failed (`store.TaskStore.read`). A clean shutdown records that at once (`aclose`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextvars import ContextVar
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, CallToolResult, InputRequiredResult, TextContent
from pydantic import BaseModel

from mcp_server.tasks.store import (
    Owner,
    TaskLimitReached,
    TaskOutcome,
    TaskProgress,
    TaskSnapshot,
    TaskStore,
)
from shared.settings import Settings
from shared.storage.base import StorageUnavailable, Store

logger = logging.getLogger(__name__)

IMMEDIATE_RESULT_WINDOW = 0.1  # seconds a task tool may take to answer without becoming a task
ANSWER_POLL_INTERVAL = 0.5  # how often a parked task looks for answers given on another instance
PROGRESS_WRITE_INTERVAL = 0.2  # status messages closer together than this are not all stored
POLL_INTERVAL_MS = 1000  # what clients are told to poll tasks/get at
STOP_GRACE = 5.0  # how long a stopped body may take to unwind

INPUT_MESSAGE = "Waiting for the client's answer"
CANCELLED_MESSAGE = "Cancelled at the client's request"
REVOKED_MESSAGE = "The authorization that started this task has ended"
SHUTDOWN_MESSAGE = "The server stopped before the task finished"
TOO_LARGE_MESSAGE = "The result is larger than this server keeps (TASK_MAX_RESULT_BYTES)"
LIMIT_MESSAGE = (
    "You already have {limit} tasks (running, or finished with a result not yet expired); "
    "wait for some to expire or cancel some, then try again"
)

GrantCheck = Callable[[str], Awaitable[bool]]
"""Whether the grant with this id is still live (AUTH_MODE=internal: its record exists)."""

_current: ContextVar[TaskHandle | None] = ContextVar("mcp_reference_task", default=None)


def current_task() -> TaskHandle | None:
    """The task the running tool body belongs to (or may become), if it was called as one."""
    return _current.get()


class TaskHandle:
    """What a tool body called with task support can do about its task."""

    def __init__(self, runner: TaskRunner) -> None:
        self._runner = runner
        self._commit_wanted = asyncio.Event()
        self._committed: asyncio.Future[TaskSnapshot] = asyncio.get_running_loop().create_future()
        self._poked = asyncio.Event()
        self._used_keys: set[str] = set()
        self._message: str | None = None
        self._last_write = 0.0

    @property
    def snapshot(self) -> TaskSnapshot | None:
        """The task as created, once the call has become one."""
        if self._committed.done() and not self._committed.cancelled() and self._committed.exception() is None:
            return self._committed.result()
        return None

    @property
    def is_task(self) -> bool:
        return self.snapshot is not None

    async def become_task(self) -> TaskSnapshot:
        """Turn this call into a task now (the client gets its CreateTaskResult) and return it;
        the rest of the body runs as the task. A no-op once it is one."""
        self._commit_wanted.set()
        return await asyncio.shield(self._committed)

    async def report(self, message: str) -> None:
        """Set the task's status message (what `tasks/get` shows while it works); before the
        call became a task there is nothing to show it on yet."""
        self._message = message
        snapshot = self.snapshot
        if snapshot is None:
            return
        now = self._runner.store.now()
        if now - self._last_write < PROGRESS_WRITE_INTERVAL:
            return
        self._last_write = now
        progress = TaskProgress(status="working", message=message, updated_at=now)
        await self._runner.store.set_progress(snapshot.meta, snapshot.task_id, progress)

    async def ask(self, requests: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Park the task as input_required with `requests` (wire form, keyed) until the client
        answers every one through tasks/update, on any instance; return the answers (wire form).

        Raises:
            ValueError: a key was used before in this task (keys are unique over its lifetime).
        """
        reused = sorted(self._used_keys & set(requests))
        if reused:
            raise ValueError(f"input keys {reused} were already used by this task")
        self._used_keys |= set(requests)
        snapshot = await self.become_task()
        store, meta, task_id = self._runner.store, snapshot.meta, snapshot.task_id
        waiting = TaskProgress(
            status="input_required",
            message=INPUT_MESSAGE,
            input_requests=dict(requests),
            updated_at=store.now(),
        )
        await store.set_progress(meta, task_id, waiting)
        while True:
            answers = await store.answers(task_id, requests)
            if len(answers) == len(requests):
                break
            await self.wait_for_poke(ANSWER_POLL_INTERVAL)
        resumed = TaskProgress(status="working", message=self._message, updated_at=store.now())
        await store.set_progress(meta, task_id, resumed)
        await store.drop_answers(task_id, requests)
        return answers

    def poke(self) -> None:
        """An answer for the task arrived in this process: look now, not at the next poll."""
        self._poked.set()

    async def wait_for_poke(self, longest: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._poked.wait(), longest)
        self._poked.clear()


class TaskRunner:
    """Runs task-capable tool calls and supervises the ones that became tasks (see the module)."""

    def __init__(
        self,
        store: TaskStore,
        *,
        lease: float,
        max_result_bytes: int,
        grant_alive: GrantCheck | None = None,
        immediate_window: float = IMMEDIATE_RESULT_WINDOW,
    ) -> None:
        self.store = store
        self.lease = lease
        self._max_result_bytes = max_result_bytes
        self._grant_alive = grant_alive
        self._window = immediate_window
        self._running: dict[str, tuple[TaskHandle, asyncio.Task[HandlerResult]]] = {}
        self._supervisors: set[asyncio.Task[None]] = set()

    @classmethod
    def from_settings(
        cls, settings: Settings, store: Store, *, grant_alive: GrantCheck | None = None
    ) -> TaskRunner:
        tasks = TaskStore(store, max_ttl=settings.task_max_ttl, per_owner=settings.tasks_per_principal)
        return cls(
            tasks,
            lease=settings.task_lease_seconds,
            max_result_bytes=settings.task_max_result_bytes,
            grant_alive=grant_alive,
        )

    def poke(self, task_id: str) -> None:
        """Wake a task this process runs (an answer arrived), rather than at its next poll."""
        running = self._running.get(task_id)
        if running is not None:
            running[0].poke()

    async def cancel(self, snapshot: TaskSnapshot) -> None:
        """End a task as cancelled: its body first, if this process runs it (so nothing it does
        lands after the outcome), then the outcome, which the instance running it elsewhere
        notices within a heartbeat. Unchanged if it ended already."""
        running = self._running.get(snapshot.task_id)
        if running is not None:
            await _stop(running[1])
        cancelled = TaskOutcome(status="cancelled", message=CANCELLED_MESSAGE, at=self.store.now())
        await self.store.finish(snapshot.meta, snapshot.task_id, cancelled)

    async def run(
        self,
        ctx: ServerRequestContext[Any, Any],
        call_next: CallNext,
        *,
        owner: Owner,
        tool: str,
        scopes: Iterable[str],
        ttl: float,
    ) -> HandlerResult:
        """Call the tool; answer its result, or the CreateTaskResult of the task it became."""
        handle = TaskHandle(self)
        body = asyncio.create_task(_body(handle, call_next, ctx))
        wanted = asyncio.create_task(handle._commit_wanted.wait())
        try:
            done, _ = await asyncio.wait(
                {body, wanted}, timeout=self._window, return_when=asyncio.FIRST_COMPLETED
            )
        except BaseException:  # the request went away before there was a task: so does the call
            body.cancel()
            raise
        finally:
            wanted.cancel()
        if body in done and not handle._commit_wanted.is_set():
            return body.result()
        try:
            snapshot = await self.store.create(
                owner, tool=tool, scopes=scopes, ttl=ttl, poll_ms=POLL_INTERVAL_MS, lease=self.lease
            )
        except TaskLimitReached:
            body.cancel()
            handle._committed.cancel()
            text = LIMIT_MESSAGE.format(limit=self.store.per_owner)
            return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)
        except BaseException:
            body.cancel()
            handle._committed.cancel()
            raise
        handle._committed.set_result(snapshot)
        self._running[snapshot.task_id] = (handle, body)
        supervisor = asyncio.create_task(self._supervise(snapshot, handle, body))
        self._supervisors.add(supervisor)
        supervisor.add_done_callback(self._supervisors.discard)
        logger.info("tool %r became task %s", tool, _short(snapshot.task_id))
        created = snapshot.detailed()
        return {"resultType": "task", **created}

    async def _supervise(
        self, snapshot: TaskSnapshot, handle: TaskHandle, body: asyncio.Task[HandlerResult]
    ) -> None:
        meta, task_id = snapshot.meta, snapshot.task_id
        heartbeat = self.lease / 3
        try:
            while not body.done():
                await asyncio.wait({body}, timeout=heartbeat)
                if body.done():
                    break
                try:
                    stop, outcome = await self._stop_reason(snapshot)
                    if stop:  # the body first: nothing it does may land after the outcome
                        await _stop(body)
                        if outcome is not None:
                            await self.store.finish(meta, task_id, outcome)
                        return
                    await self.store.renew_lease(meta, task_id, self.store.now() + self.lease)
                except StorageUnavailable:
                    logger.warning("task %s: storage unavailable, lease not renewed", _short(task_id))
            await self.store.finish(meta, task_id, self._outcome(meta.tool, body))
        except StorageUnavailable:
            logger.warning("task %s: storage unavailable, outcome not recorded", _short(task_id))
        except Exception:  # a bug here must not vanish with the background task: the lease ends it
            logger.exception("task %s: supervisor failed", _short(task_id))
        finally:
            self._running.pop(task_id, None)

    async def _stop_reason(self, snapshot: TaskSnapshot) -> tuple[bool, TaskOutcome | None]:
        """Whether the body must stop, and the outcome to record once it has: its lifetime is
        over (nothing to record), an outcome was recorded elsewhere (tasks/cancel on another
        instance, a lapsed lease), or its grant ended (cancelled)."""
        meta, task_id = snapshot.meta, snapshot.task_id
        if self.store.now() >= meta.expires_at:
            return True, None
        if await self.store.outcome(task_id) is not None:
            return True, None
        grant_id, alive = meta.grant_id, self._grant_alive
        if grant_id is not None and alive is not None and not await alive(grant_id):
            logger.info("task %s stopped: its grant ended", _short(task_id))
            return True, TaskOutcome(status="cancelled", message=REVOKED_MESSAGE, at=self.store.now())
        return False, None

    def _outcome(self, tool: str, body: asyncio.Task[HandlerResult]) -> TaskOutcome:
        now = self.store.now()
        if body.cancelled():
            return TaskOutcome(status="cancelled", message=CANCELLED_MESSAGE, at=now)
        error = body.exception()
        if isinstance(error, MCPError):
            return _failed(error.error.model_dump(by_alias=True, mode="json", exclude_none=True), now)
        if error is not None:
            logger.error("task of tool %r crashed", tool, exc_info=error)
            return _failed({"code": INTERNAL_ERROR, "message": "Internal error"}, now)
        result = body.result()
        if isinstance(result, InputRequiredResult):
            logger.error("tool %r returned an InputRequiredResult as a task: use client_input.gather", tool)
            return _failed({"code": INTERNAL_ERROR, "message": "Internal error"}, now)
        dumped = _dump(result)
        if len(json.dumps(dumped, separators=(",", ":"))) > self._max_result_bytes:
            return _failed({"code": INTERNAL_ERROR, "message": TOO_LARGE_MESSAGE}, now)
        return TaskOutcome(status="completed", result=dumped, at=now)

    async def aclose(self) -> None:
        """Shutdown: every task this process runs ends now as failed, instead of after its lease."""
        for task_id, (handle, body) in list(self._running.items()):
            snapshot = handle.snapshot
            if snapshot is not None:
                ended = TaskOutcome(
                    status="failed",
                    message=SHUTDOWN_MESSAGE,
                    error={"code": INTERNAL_ERROR, "message": SHUTDOWN_MESSAGE},
                    at=self.store.now(),
                )
                with contextlib.suppress(StorageUnavailable):
                    await self.store.finish(snapshot.meta, task_id, ended)
            body.cancel()
        for supervisor in list(self._supervisors):
            supervisor.cancel()
        await asyncio.gather(*self._supervisors, return_exceptions=True)


async def _body(
    handle: TaskHandle, call_next: CallNext, ctx: ServerRequestContext[Any, Any]
) -> HandlerResult:
    _current.set(handle)  # this asyncio task's own copy of the context
    return await call_next(ctx)


async def _stop(body: asyncio.Task[HandlerResult]) -> None:
    body.cancel()
    await asyncio.wait({body}, timeout=STOP_GRACE)


def _failed(error: dict[str, Any], at: float) -> TaskOutcome:
    return TaskOutcome(status="failed", message=str(error.get("message", "")) or None, error=error, at=at)


def _dump(result: HandlerResult) -> dict[str, Any]:
    if isinstance(result, BaseModel):
        return result.model_dump(by_alias=True, mode="json", exclude_none=True)
    return dict(result or {})


def _short(task_id: str) -> str:
    """Enough of a task id to follow it through the logs, not enough to use it."""
    return task_id[:8]
