"""In-process `Store` for a single worker (development, tests, one-replica deployments).

It mirrors Redis semantics closely enough that the same contract suite passes against both:
expired keys are absent on every read, `set` without a ttl clears an existing ttl, `incr` starts
its window on the first increment, `hset`/`sadd` keep the key's ttl, an index expires with its
last member, and using a key as the wrong kind raises TypeError (Redis' WRONGTYPE). Nothing here
awaits, so on one event loop every method is atomic; that is what makes `take` single-use without
a lock.
"""

from __future__ import annotations

import builtins
import math
import time
from collections.abc import Callable
from itertools import islice
from typing import TypeVar


class _Index(dict[str, float]):
    """An expiring index: member -> the clock reading at which it expires (Redis: a sorted set)."""


_Value = str | dict[str, str] | set[str] | _Index
_T = TypeVar("_T", str, dict[str, str], set[str], _Index)

_KIND_NAMES: dict[type, str] = {str: "string", dict: "hash", set: "set", _Index: "index"}


def _check_ttl(ttl: float) -> float:
    """Reject ttls Redis would reject, so the two backends fail the same way."""
    if not math.isfinite(ttl) or ttl <= 0:
        raise ValueError(f"ttl must be a positive number of seconds, got {ttl!r}")
    return ttl


class MemoryStore:
    """Dict-backed store with real expiry.

    Expired keys are dropped lazily when read and, so that keys nobody reads again do not pile
    up, every `sweep_every` writes examine the next `sweep_batch` keys that carry a ttl. The
    examined keys that are still alive move to the back of the queue, so successive sweeps walk
    round all of them instead of rechecking the same long-lived keys.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sweep_every: int = 64,
        sweep_batch: int = 128,
    ) -> None:
        self._clock = clock
        self._sweep_every = sweep_every
        self._sweep_batch = sweep_batch
        self._data: dict[str, _Value] = {}
        self._expires_at: dict[str, float] = {}  # only keys that have a ttl; order = sweep queue
        self._writes = 0

    @property
    def raw_size(self) -> int:
        """Entries held, including expired ones not yet swept (for tests and metrics)."""
        return len(self._data)

    # -- strings ---------------------------------------------------------------------------

    async def get(self, key: str) -> str | None:
        return self._lookup(key, str)

    async def set(
        self, key: str, value: str, ttl: float | None = None, *, only_if_absent: bool = False
    ) -> bool:
        if ttl is not None:
            _check_ttl(ttl)
        if only_if_absent and self._alive(key):
            return False
        self._data[key] = value
        self._expires_at.pop(key, None)
        if ttl is not None:
            self._expires_at[key] = self._clock() + ttl
        self._wrote()
        return True

    async def delete(self, *keys: str) -> int:
        removed = 0
        for key in keys:
            if self._alive(key):
                self._remove(key)
                removed += 1
        return removed

    async def take(self, key: str) -> str | None:
        value = self._lookup(key, str)
        if value is not None:
            self._remove(key)
        return value

    async def incr(self, key: str, ttl: float) -> int:
        _check_ttl(ttl)
        current = self._lookup(key, str)
        try:
            count = int(current or "0") + 1
        except ValueError:
            raise ValueError(f"value of {key!r} is not an integer") from None
        self._data[key] = str(count)
        if count == 1:  # same rule as the Redis script: the first increment opens the window
            self._expires_at.pop(key, None)
            self._expires_at[key] = self._clock() + ttl
        self._wrote()
        return count

    async def ttl(self, key: str) -> float | None:
        if not self._alive(key) or key not in self._expires_at:
            return None
        return self._expires_at[key] - self._clock()

    async def expire(self, key: str, ttl: float) -> bool:
        _check_ttl(ttl)
        if not self._alive(key):
            return False
        self._expires_at.pop(key, None)
        self._expires_at[key] = self._clock() + ttl
        return True

    # -- hashes ----------------------------------------------------------------------------

    async def hset(self, key: str, field: str, value: str) -> None:
        self._lookup_or_create(key, dict)[field] = value
        self._wrote()

    async def hget(self, key: str, field: str) -> str | None:
        fields = self._lookup(key, dict)
        return None if fields is None else fields.get(field)

    async def hgetall(self, key: str) -> dict[str, str]:
        return dict(self._lookup(key, dict) or {})

    async def hdel(self, key: str, field: str) -> bool:
        fields = self._lookup(key, dict)
        if fields is None or field not in fields:
            return False
        del fields[field]
        if not fields:  # Redis removes a hash with no fields left
            self._remove(key)
        return True

    # -- sets ------------------------------------------------------------------------------

    async def sadd(self, key: str, *members: str, ttl: float | None = None) -> None:
        if ttl is not None:
            _check_ttl(ttl)
        if not members:
            return
        existed = self._alive(key)
        self._lookup_or_create(key, set).update(members)
        if ttl is not None:
            current = self._expires_at.get(key)
            new_expiry = self._clock() + ttl
            # A pre-existing set without a ttl already lives "at least ttl"; a new one gets it.
            if (not existed) or (current is not None and current < new_expiry):
                self._expires_at.pop(key, None)
                self._expires_at[key] = new_expiry
        self._wrote()

    async def smembers(self, key: str) -> builtins.set[str]:
        return set(self._lookup(key, set) or ())

    async def srem(self, key: str, *members: str) -> int:
        found = self._lookup(key, set)
        if found is None:
            return 0
        removed = sum(1 for member in set(members) if member in found)
        found.difference_update(members)
        if not found:  # Redis removes a set with no members left
            self._remove(key)
        return removed

    # -- expiring indexes ------------------------------------------------------------------

    async def index_add(self, key: str, member: str, ttl: float, *, limit: int | None = None) -> list[str]:
        _check_ttl(ttl)
        index = self._live_index(key) or _Index()
        index[member] = max(index.get(member, 0.0), self._clock() + ttl)
        evicted: list[str] = []
        if limit is not None and len(index) > limit:
            soonest = sorted((at, name) for name, at in index.items() if name != member)
            evicted = [name for _, name in soonest[: len(index) - limit]]
            for name in evicted:
                del index[name]
        self._data[key] = index
        self._expires_at.pop(key, None)
        self._expires_at[key] = max(index.values())
        self._wrote()
        return evicted

    async def index_members(self, key: str) -> dict[str, float]:
        now = self._clock()
        return {name: at - now for name, at in (self._live_index(key) or {}).items()}

    async def index_remove(self, key: str, *members: str) -> int:
        index = self._live_index(key)
        if index is None:
            return 0
        removed = sum(1 for name in members if index.pop(name, None) is not None)
        if not index:
            self._remove(key)
        return removed

    def _live_index(self, key: str) -> _Index | None:
        """The index at key with its expired members dropped (None if nothing is left)."""
        index = self._lookup(key, _Index)
        if index is None:
            return None
        now = self._clock()
        for name in [name for name, at in index.items() if at <= now]:
            del index[name]
        if not index:
            self._remove(key)
            return None
        return index

    # -- lifecycle -------------------------------------------------------------------------

    async def drop_expired(self) -> int:
        now = self._clock()
        expired = [key for key, at in self._expires_at.items() if at <= now]
        for key in expired:
            self._remove(key)
        dropped = len(expired)
        for value in list(self._data.values()):
            if isinstance(value, _Index):
                gone = [name for name, at in value.items() if at <= now]
                for name in gone:
                    del value[name]
                dropped += len(gone)
        return dropped

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._data.clear()
        self._expires_at.clear()

    # -- internals (all synchronous: no await may split a read from its write) -------------

    def _alive(self, key: str) -> bool:
        """Whether key exists, dropping it first if it has expired."""
        expires_at = self._expires_at.get(key)
        if expires_at is not None and expires_at <= self._clock():
            self._remove(key)
        return key in self._data

    def _lookup(self, key: str, kind: type[_T]) -> _T | None:
        if not self._alive(key):
            return None
        value = self._data[key]
        if type(value) is not kind:
            raise TypeError(
                f"{key!r} holds a {_KIND_NAMES[type(value)]}, not a {_KIND_NAMES[kind]} (WRONGTYPE)"
            )
        return value

    def _lookup_or_create(self, key: str, kind: type[_T]) -> _T:
        value = self._lookup(key, kind)
        if value is None:
            value = kind()
            self._data[key] = value
        return value

    def _remove(self, key: str) -> None:
        self._data.pop(key, None)
        self._expires_at.pop(key, None)

    def _wrote(self) -> None:
        self._writes += 1
        if self._writes % self._sweep_every == 0:
            self._sweep()

    def _sweep(self) -> None:
        now = self._clock()
        for key in list(islice(self._expires_at, self._sweep_batch)):
            expires_at = self._expires_at.pop(key)
            if expires_at <= now:
                self._data.pop(key, None)
            else:
                self._expires_at[key] = expires_at  # to the back of the queue
