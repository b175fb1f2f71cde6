"""`BoundedCache`: an in-process mapping that never holds more than a fixed number of entries.

Every per-process cache of the servers (verified signatures, introspection answers, parsed
records, tenants, per-address counters...) is fed by what callers send, so each must have a
ceiling an anonymous caller cannot push past. This is the one implementation: storing an entry
beyond `max_entries` drops the oldest. "Oldest" is the least recently used (`lru=True`: a hit
counts as use) or the first stored (`lru=False`: for tables whose order means "first seen",
such as rate-limit windows, where a busy key must not stay forever by being busy).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    def __init__(self, max_entries: int, *, lru: bool = True) -> None:
        if max_entries < 1:
            raise ValueError(f"a cache holds at least one entry, not {max_entries}")
        self.max_entries = max_entries
        self._lru = lru
        self._entries: OrderedDict[K, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[K]:
        """The keys, oldest first (a snapshot)."""
        return iter(list(self._entries))

    def items(self) -> list[tuple[K, V]]:
        """A snapshot, oldest first (safe to change the cache while going through it)."""
        return list(self._entries.items())

    def get(self, key: K) -> V | None:
        """The entry, or None; with `lru`, a hit makes it the most recently used."""
        value = self._entries.get(key)
        if value is not None and self._lru:
            self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        """Store (or replace) an entry, then drop the oldest while there are too many. A replaced
        entry keeps its place unless `lru`."""
        self._entries[key] = value
        if self._lru:
            self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def pop(self, key: K) -> V | None:
        return self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
