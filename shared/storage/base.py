"""The storage protocol every stateful part of the project is written against.

It knows nothing about OAuth or MCP: string keys, string values, TTLs in seconds (positive and
finite; zero, negative or NaN raise ValueError), and the few atomic operations the callers need
(take-once for single-use codes, counters for rate limits, hashes for per-user data, sets for
grant membership, and expiring indexes: members that each expire on their own, for "which grants
does this user hold" lists that must shrink as the grants expire). `memory.py` and `redis.py`
implement it identically; `tests/integration/test_storage_contract.py` runs one suite against
both, and against Redis behind Sentinel and on a Redis Cluster.

Every operation but `delete` touches one key, so each is valid on a Redis Cluster whatever the
keys. `delete` of several keys is atomic only for keys in one hash slot: keys meant to be deleted
together carry one `same_slot` tag.
"""

from __future__ import annotations

import builtins
from typing import Protocol


def same_slot(tag: str) -> str:
    """`{tag}`, to put in a key after its fixed prefix: a Redis Cluster stores a key in the hash slot
    of the text between its first `{` and the next `}`, so keys with one tag (a grant's record,
    its token set and its tombstone) live together and one command may touch them all at once,
    while keys with other tags spread over the nodes. A tag is an id we made: never empty, no braces
    (they would end or move it)."""
    if not tag or "{" in tag or "}" in tag:
        raise ValueError(f"a hash tag must be non-empty and free of braces, got {tag!r}")
    return "{" + tag + "}"


class StorageUnavailable(Exception):
    """The backend cannot be reached; callers answer 503, never 500."""


class Store(Protocol):
    async def get(self, key: str) -> str | None:
        """The value, or None if absent or expired."""

    async def set(
        self, key: str, value: str, ttl: float | None = None, *, only_if_absent: bool = False
    ) -> bool:
        """Store value (expiring after ttl seconds if given). With only_if_absent, refuse to overwrite
        and return False when the key exists; otherwise return True."""

    async def delete(self, *keys: str) -> int:
        """Remove keys; returns how many existed. All at once only if they share a `same_slot`
        tag (a cluster deletes slot by slot)."""

    async def take(self, key: str) -> str | None:
        """Atomically read and delete: of many concurrent callers exactly one gets the value."""

    async def incr(self, key: str, ttl: float) -> int:
        """Increment a counter; the first increment starts its ttl (fixed window)."""

    async def ttl(self, key: str) -> float | None:
        """Seconds left before key expires; None if absent or without expiry."""

    async def expire(self, key: str, ttl: float) -> bool:
        """(Re)set the expiry of an existing key of any kind; False if the key is absent."""

    async def hset(self, key: str, field: str, value: str) -> None: ...

    async def hget(self, key: str, field: str) -> str | None: ...

    async def hgetall(self, key: str) -> dict[str, str]: ...

    async def hdel(self, key: str, field: str) -> bool:
        """Remove one field; True if it existed."""

    async def sadd(self, key: str, *members: str, ttl: float | None = None) -> None:
        """Add members; with ttl, (re)set the set's expiry to at least ttl seconds."""

    async def smembers(self, key: str) -> builtins.set[str]: ...

    async def srem(self, key: str, *members: str) -> int:
        """Remove members from a set; returns how many were in it. An emptied set disappears."""

    async def index_add(self, key: str, member: str, ttl: float, *, limit: int | None = None) -> list[str]:
        """Keep `member` in the index at `key` for at least ttl more seconds (an existing
        member's expiry is extended, never shortened). Members whose time is up are dropped
        first; then, with `limit`, the members expiring soonest (never `member` itself) are
        removed until at most `limit` remain, and returned so the caller can end what they stood
        for. The key itself expires with its longest-lived member. Atomic."""

    async def index_members(self, key: str) -> dict[str, float]:
        """The index's live members, each with the seconds it has left."""

    async def index_remove(self, key: str, *members: str) -> int:
        """Remove members; returns how many were live. An emptied index disappears."""

    async def drop_expired(self) -> int:
        """Remove now every key and expiring-index member whose time is up; returns how many.

        Expired data is never visible either way; this is about memory only. The memory store
        otherwise drops an expired key when it is next touched or by its incremental sweep, so a
        quiet process keeps them. Redis expires keys itself (when touched, and by sampling keys
        with a ttl ten times a second) and an index's expired members go at its next write or
        with the index itself: nothing is left for a client to force, so it returns 0."""

    async def ping(self) -> bool:
        """True when the backend answers (readiness)."""

    async def close(self) -> None: ...
