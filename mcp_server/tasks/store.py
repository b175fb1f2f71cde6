"""Task state in the Store, shared by every instance: who owns a task, where it stands, its outcome.

Layout (`{id}` is the task id as a `same_slot` hash tag, so a task's keys live in one Redis
Cluster slot; every operation below touches one key):

* `mcp:task:{id}` (hash, TTL = the task's lifetime, counted from the tools/call that created it):
  - `meta`: who owns it (digest of issuer, subject, client), the grant it was created under, the
    tool, the scopes that tool needs, when it was created and how long it lives. Written once.
  - `progress`: working or input_required, a status message and the pending input requests.
    Written by the instance running the task, and only by it.
  - `lease`: until when that instance vouches for the task (Unix time). It renews it every third
    of TASK_LEASE_SECONDS; a reader that finds it lapsed ends the task as failed, so a task whose
    process died does not hang.
  - `answer:<key>`: the client's answer to a pending input request (tasks/update), until the
    running instance takes it.
* `mcp:task:{id}:outcome` (string, same TTL): the terminal state (completed with its result,
  failed with its JSON-RPC error, cancelled). Written with set-if-absent: the first of the
  runner finishing, a cancellation and a lapsed lease wins, and a terminal task never changes.
* `mcp:tasks-of:<owner digest>` (a Store expiring index: each task id expires with its task): the
  owner's live tasks, to bound how many one caller keeps (TASKS_PER_PRINCIPAL) and to list them.

Ownership is checked on every read: a task id another owner presents is "not found", exactly as
an id that never existed; ids are 256 random bits, so they cannot be guessed either.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from mcp_types import INTERNAL_ERROR
from pydantic import BaseModel

from mcp_server.protection.principal import ANONYMOUS
from shared.storage import records
from shared.storage.base import Store
from shared.storage.records import task_key, task_outcome_key, task_owner_key
from shared.validation import Principal

logger = logging.getLogger(__name__)

ANSWER_FIELD = "answer:"
# What `new_task_id` produces (43 characters); anything else is not looked up at all.
TASK_ID = re.compile(r"[A-Za-z0-9_-]{43}")

Status = Literal["working", "input_required", "completed", "failed", "cancelled"]
Running = Literal["working", "input_required"]
Terminal = Literal["completed", "failed", "cancelled"]

LEASE_LAPSED_MESSAGE = "The server running this task stopped before it finished"


def new_task_id() -> str:
    """256 random bits, URL-safe: unguessable, and a valid `Mcp-Name` header value as it is."""
    return secrets.token_urlsafe(32)


def iso(timestamp: float) -> str:
    """ISO 8601 in UTC with milliseconds, as the Task timestamps are sent."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Owner:
    """Who a task belongs to: one issuer's subject through one client, and the grant if known.

    The grant id is only known for tokens of this project's own authorization server validated
    in-process (AUTH_MODE=internal); a task created under a grant is visible only to tokens of
    that grant, so a revoked grant's tasks are hidden from every later authorization.
    """

    digest: str
    grant_id: str | None = None

    @classmethod
    def of(cls, principal: Principal | None) -> Owner:
        if principal is None:  # stdio, AUTH_MODE=none: one shared anonymous caller
            parts = ["", ANONYMOUS, ""]
            grant_id = None
        else:
            parts = [principal.issuer or "", principal.subject, principal.client_id]
            grant = principal.claims.get("grant_id")
            grant_id = grant if isinstance(grant, str) and grant else None
        digest = hashlib.sha256(json.dumps(parts, separators=(",", ":")).encode()).hexdigest()
        return cls(digest, grant_id)

    def owns(self, meta: TaskMeta) -> bool:
        return hmac.compare_digest(self.digest, meta.owner) and self.grant_id == meta.grant_id


class TaskMeta(BaseModel):
    owner: str
    grant_id: str | None
    tool: str
    scopes: list[str]
    created_at: float
    ttl: float
    poll_ms: int

    @property
    def expires_at(self) -> float:
        return self.created_at + self.ttl


class TaskProgress(BaseModel):
    status: Running = "working"
    message: str | None = None
    input_requests: dict[str, dict[str, Any]] = {}
    updated_at: float


class TaskOutcome(BaseModel):
    status: Terminal
    message: str | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    at: float


@dataclass
class TaskSnapshot:
    """One read of a task: everything `tasks/get` answers with, as the store had it."""

    task_id: str
    meta: TaskMeta
    progress: TaskProgress
    lease_until: float
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    outcome: TaskOutcome | None = None

    @property
    def pending(self) -> dict[str, dict[str, Any]]:
        """Input requests still waiting for an answer (answered ones drop out at once)."""
        if self.outcome is not None or self.progress.status != "input_required":
            return {}
        return {k: v for k, v in self.progress.input_requests.items() if k not in self.answers}

    @property
    def status(self) -> Status:
        if self.outcome is not None:
            return self.outcome.status
        return "input_required" if self.pending else "working"

    def detailed(self) -> dict[str, Any]:
        """The DetailedTask (SEP-2663): the Task fields plus inputRequests, result or error."""
        updated = max(
            self.meta.created_at,
            self.progress.updated_at,
            self.outcome.at if self.outcome is not None else 0.0,
        )
        message = self.outcome.message if self.outcome is not None else self.progress.message
        task: dict[str, Any] = {"taskId": self.task_id, "status": self.status}
        if message:
            task["statusMessage"] = message
        task |= {
            "createdAt": iso(self.meta.created_at),
            "lastUpdatedAt": iso(updated),
            "ttlMs": int(self.meta.ttl * 1000),
            "pollIntervalMs": self.meta.poll_ms,
        }
        if self.status == "input_required":
            task["inputRequests"] = self.pending
        elif self.outcome is not None and self.outcome.status == "completed":
            task["result"] = self.outcome.result or {}
        elif self.outcome is not None and self.outcome.status == "failed":
            task["error"] = self.outcome.error or {"code": INTERNAL_ERROR, "message": "Task failed"}
        return task


class TaskLimitReached(Exception):
    """The caller already keeps TASKS_PER_PRINCIPAL tasks (running or with a stored result)."""


class TaskStore:
    """Reads and writes task state; knows nothing of running tools (that is `runner.py`)."""

    def __init__(
        self,
        store: Store,
        *,
        max_ttl: float,
        per_owner: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self.max_ttl = max_ttl
        self.per_owner = per_owner
        self._clock = clock

    def now(self) -> float:
        return self._clock()

    # -- creating ---------------------------------------------------------------------------

    async def create(
        self, owner: Owner, *, tool: str, scopes: Iterable[str], ttl: float, poll_ms: int, lease: float
    ) -> TaskSnapshot:
        """Write a new task (working, leased for `lease` seconds) and return it. It is readable
        by any instance when this returns (the spec's durable creation).

        Raises:
            TaskLimitReached: the owner already keeps `per_owner` live tasks.
        """
        now = self._clock()
        ttl = min(ttl, self.max_ttl)
        if len(await self.owned(owner)) >= self.per_owner:
            raise TaskLimitReached
        task_id = new_task_id()
        index = task_owner_key(owner.digest)
        await self._store.index_add(index, task_id, ttl)
        # Two creations racing past the count above both land in the index: the one that finds
        # the index over the limit withdraws, so the bound holds whatever the concurrency.
        if len(await self.owned(owner)) > self.per_owner:
            await self._store.index_remove(index, task_id)
            raise TaskLimitReached
        meta = TaskMeta(
            owner=owner.digest,
            grant_id=owner.grant_id,
            tool=tool,
            scopes=sorted(scopes),
            created_at=now,
            ttl=ttl,
            poll_ms=poll_ms,
        )
        progress = TaskProgress(updated_at=now)
        key = task_key(task_id)
        await self._store.hset(key, "meta", meta.model_dump_json())
        await self._store.hset(key, "progress", progress.model_dump_json())
        await self._store.hset(key, "lease", repr(now + lease))
        await self._store.expire(key, ttl)
        return TaskSnapshot(task_id, meta, progress, now + lease)

    # -- reading ----------------------------------------------------------------------------

    async def find(self, owner: Owner, task_id: str) -> TaskSnapshot | None:
        """The task, if it exists and `owner` owns it; else None (never says which)."""
        snapshot = await self.read(task_id)
        if snapshot is None or not owner.owns(snapshot.meta):
            return None
        return snapshot

    async def read(self, task_id: str) -> TaskSnapshot | None:
        """The task whoever owns it (for the instance running it). A lapsed lease is turned
        into the failed outcome here, by whichever reader notices first."""
        if not TASK_ID.fullmatch(task_id):
            return None
        key = task_key(task_id)
        fields = await self._store.hgetall(key)
        if "meta" not in fields or "progress" not in fields or "lease" not in fields:
            return None  # absent, expired, or half-written by a creation still in flight
        meta = records.parse(TaskMeta, fields["meta"], key)
        progress = records.parse(TaskProgress, fields["progress"], key)
        try:
            lease_until = float(fields["lease"])
        except ValueError:
            return None
        if meta is None or progress is None:
            return None
        answers = _answers(fields, lambda name: name.startswith(ANSWER_FIELD))
        snapshot = TaskSnapshot(task_id, meta, progress, lease_until, answers, await self.outcome(task_id))
        if snapshot.outcome is None and lease_until < self._clock():
            lapsed = TaskOutcome(
                status="failed",
                message=LEASE_LAPSED_MESSAGE,
                error={"code": INTERNAL_ERROR, "message": LEASE_LAPSED_MESSAGE},
                at=self._clock(),
            )
            await self.finish(snapshot.meta, task_id, lapsed)
            snapshot.outcome = await self.outcome(task_id)
        return snapshot

    async def outcome(self, task_id: str) -> TaskOutcome | None:
        return await records.read(self._store, task_outcome_key(task_id), TaskOutcome)

    async def owned(self, owner: Owner) -> list[str]:
        """The ids of the owner's live tasks."""
        return list(await self._store.index_members(task_owner_key(owner.digest)))

    async def scopes(self, owner: Owner, task_id: str) -> frozenset[str] | None:
        """The scopes the task's tool needs, if `owner` owns the task."""
        if not TASK_ID.fullmatch(task_id):
            return None
        meta = records.parse(TaskMeta, await self._store.hget(task_key(task_id), "meta"), task_key(task_id))
        return frozenset(meta.scopes) if meta is not None and owner.owns(meta) else None

    # -- writing (the running instance) --------------------------------------------------------

    async def set_progress(self, meta: TaskMeta, task_id: str, progress: TaskProgress) -> None:
        await self._write(meta, task_id, "progress", progress.model_dump_json())

    async def renew_lease(self, meta: TaskMeta, task_id: str, until: float) -> None:
        await self._write(meta, task_id, "lease", repr(until))

    async def answers(self, task_id: str, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The answers given so far to `keys`."""
        wanted = {ANSWER_FIELD + name for name in keys}
        return _answers(await self._store.hgetall(task_key(task_id)), wanted.__contains__)

    async def drop_answers(self, task_id: str, keys: Iterable[str]) -> None:
        for name in keys:
            await self._store.hdel(task_key(task_id), ANSWER_FIELD + name)

    async def finish(self, meta: TaskMeta, task_id: str, outcome: TaskOutcome) -> bool:
        """Record the terminal state unless one is recorded already; True if this one won."""
        remaining = meta.expires_at - self._clock()
        if remaining <= 0:
            return False
        return await records.write(
            self._store, task_outcome_key(task_id), outcome, ttl=remaining, only_if_absent=True
        )

    # -- writing (the client, through tasks/update) ---------------------------------------------

    async def save_answers(self, meta: TaskMeta, task_id: str, answers: Mapping[str, dict[str, Any]]) -> None:
        for name, answer in answers.items():
            await self._write(meta, task_id, ANSWER_FIELD + name, json.dumps(answer, separators=(",", ":")))

    async def _write(self, meta: TaskMeta, task_id: str, name: str, value: str) -> None:
        """Set one field of a live task. A write racing the task's expiry would recreate its hash
        without a TTL: the expiry is set again with every write, and nothing is written after it."""
        remaining = meta.expires_at - self._clock()
        if remaining <= 0:
            return
        key = task_key(task_id)
        await self._store.hset(key, name, value)
        await self._store.expire(key, remaining)


def _answers(fields: Mapping[str, str], wanted: Callable[[str], bool]) -> dict[str, dict[str, Any]]:
    """The answers among a task's hash fields (by name, without the prefix); an unreadable one is
    not an answer (the client is asked again)."""
    answers: dict[str, dict[str, Any]] = {}
    for name, value in fields.items():
        if wanted(name):
            try:
                answer = json.loads(value)
            except ValueError:
                answer = None
            if isinstance(answer, dict):
                answers[name.removeprefix(ANSWER_FIELD)] = answer
            else:
                logger.warning("unreadable task answer: ignored")
    return answers
