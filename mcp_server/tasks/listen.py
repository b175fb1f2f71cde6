"""Task status notifications: `notifications/tasks` on a `subscriptions/listen` stream.

A client of the tasks extension names the tasks it wants to hear about in its listen request,
`notifications: {"taskIds": [...]}` (the extension's addition to the listen filter, which the SDK
passes through as an extra key). The stream then carries, besides whatever else the client asked
for, one `notifications/tasks` per change of each of those tasks: the full DetailedTask, exactly
what `tasks/get` answers at that moment, ending with its terminal state (result or error inlined).

This wraps the SDK's own listen handler rather than replacing it: the SDK keeps serving the core
notification kinds and writes the acknowledgement, to which the wrapper adds the task ids it
agreed to watch. Only the caller's own tasks are watched (another caller's id, or an unknown one,
is left out of the acknowledgement, as "not found" everywhere else), and only among the first
MAX_WATCHED ids the request names; asking without declaring the extension is refused with -32021.

Changes are found by reading the tasks from the Store every POLL_INTERVAL_MS, so a task running on
another instance is reported as well; polling is what bounds the cost (a watched task is read once
per interval, a stream watches a bounded number, and the SDK bounds the number of streams).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from typing import Any, Literal, cast

from mcp.server.context import HandlerResult, ServerRequestContext
from mcp.server.extension import RequestHandler
from mcp.server.mcpserver import require_client_extension
from mcp.shared.subscriptions import SUBSCRIPTION_ID_META_KEY
from mcp_types import (
    Notification,
    ServerNotification,
    SubscriptionFilter,
    SubscriptionsAcknowledgedNotification,
    SubscriptionsListenRequestParams,
)

from mcp_server.protection.principal import current_principal
from mcp_server.tasks.extension import TASKS_EXTENSION
from mcp_server.tasks.runner import POLL_INTERVAL_MS
from mcp_server.tasks.store import Owner, TaskStore
from shared.storage.base import StorageUnavailable

logger = logging.getLogger(__name__)

TASK_IDS_KEY = "taskIds"
MAX_WATCHED = 16
STATUS_NOTIFICATION = "notifications/tasks"


class TaskStatusNotification(Notification[dict[str, Any], Literal["notifications/tasks"]]):
    method: Literal["notifications/tasks"] = "notifications/tasks"
    params: dict[str, Any]


class TaskAwareListen:
    """`subscriptions/listen` that also watches the caller's tasks named in `taskIds`."""

    def __init__(self, sdk_listen: RequestHandler, store: TaskStore) -> None:
        self._sdk_listen = sdk_listen
        self._store = store

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], params: SubscriptionsListenRequestParams
    ) -> HandlerResult:
        extra = params.notifications.model_extra or {}
        if TASK_IDS_KEY not in extra:
            return await self._sdk_listen(ctx, params)
        require_client_extension(ctx, TASKS_EXTENSION)
        owner = Owner.of(current_principal(ctx))
        wanted = extra.get(TASK_IDS_KEY)
        watched = await self._own_tasks(owner, wanted if isinstance(wanted, list) else [])
        others = params.notifications.model_dump(by_alias=True, exclude_none=True)
        others.pop(TASK_IDS_KEY, None)
        core = params.model_copy(update={"notifications": SubscriptionFilter.model_validate(others)})
        acked = asyncio.Event()
        session = _AckAmender(ctx.session, watched, acked)
        listening = dataclasses.replace(ctx, session=cast(Any, session))
        watcher = asyncio.create_task(self._watch(ctx, owner, watched, acked))
        try:
            return await self._sdk_listen(listening, core)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _own_tasks(self, owner: Owner, wanted: list[Any]) -> list[str]:
        """The ids among the first MAX_WATCHED of `wanted` that name a task of `owner`, in order
        (only that many are looked up, however many the client sends)."""
        watched: list[str] = []
        candidates = list(dict.fromkeys(item for item in wanted if isinstance(item, str)))
        for task_id in candidates[:MAX_WATCHED]:
            with contextlib.suppress(StorageUnavailable):
                if await self._store.find(owner, task_id) is not None:
                    watched.append(task_id)
        return watched

    async def _watch(
        self, ctx: ServerRequestContext[Any, Any], owner: Owner, watched: list[str], acked: asyncio.Event
    ) -> None:
        """Send each watched task's state when it changes, until it is terminal or gone."""
        await acked.wait()
        last: dict[str, Any] = {}
        remaining = list(watched)
        while remaining:
            for task_id in list(remaining):
                try:
                    snapshot = await self._store.find(owner, task_id)
                except StorageUnavailable:
                    continue
                if snapshot is None:  # expired
                    remaining.remove(task_id)
                    continue
                detailed = snapshot.detailed()
                if detailed != last.get(task_id):
                    last[task_id] = detailed
                    meta = {SUBSCRIPTION_ID_META_KEY: ctx.request_id}
                    notification = TaskStatusNotification(params={"_meta": meta, **detailed})
                    await ctx.session.send_notification(
                        cast(ServerNotification, notification), related_request_id=ctx.request_id
                    )
                if snapshot.outcome is not None:
                    remaining.remove(task_id)
            await asyncio.sleep(POLL_INTERVAL_MS / 1000)


class _AckAmender:
    """The request's session, but the listen acknowledgement also names the watched task ids
    (and the watcher starts only once it is sent: the acknowledgement is the stream's first frame)."""

    def __init__(self, session: Any, watched: list[str], acked: asyncio.Event) -> None:
        self._session = session
        self._watched = watched
        self._acked = acked

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    async def send_notification(self, notification: Any, related_request_id: Any = None) -> None:
        if isinstance(notification, SubscriptionsAcknowledgedNotification):
            honored = notification.params.notifications.model_dump(by_alias=True, exclude_none=True)
            amended = SubscriptionFilter.model_validate({**honored, TASK_IDS_KEY: self._watched})
            params = notification.params.model_copy(update={"notifications": amended})
            notification = notification.model_copy(update={"params": params})
            await self._session.send_notification(notification, related_request_id=related_request_id)
            self._acked.set()
            return
        await self._session.send_notification(notification, related_request_id=related_request_id)
