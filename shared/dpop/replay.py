"""Each DPoP proof is used once (RFC 9449 section 11.1): its `jti` is remembered while it could
still be accepted, and a second presentation is refused.

A proof is acceptable until its `iat` plus DPOP_PROOF_MAX_AGE, so that is how long its `jti` is
kept. Identifiers are scoped by the proof's key (a digest of the key's thumbprint and the `jti`):
a client can only ever collide with itself, and nobody can use up another client's identifiers.

Two implementations, one contract (`first_use`):
- `LocalReplayGuard`: an in-process set, for the in-memory Store (one process holds all the
  state anyway). No Store call, so the check costs no round trip on the hot path. It is bounded:
  when full, the oldest entry is dropped and its deadline becomes the *horizon*, below which every
  proof is refused as possibly replayed. A dropped identifier can therefore never be accepted
  again; under a flood the window of accepted proofs narrows instead of memory growing.
  Entries leave from the front (expired or evicted, oldest first), so the table is an
  `OrderedDict`, whose oldest entry is found in constant time: a plain dict scans past every
  slot deleted at its front, and a full set of 100,000 then cost 30 to 300 us per proof.
- `StoreReplayGuard`: the shared Store, so a proof used at one instance is refused at every other.
  On Redis one `SET key 1 NX PX ttl` per proof: one key, so valid on a Redis Cluster too.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from shared.storage.base import Store
from shared.storage.records import dpop_proof_key

LOCAL_CAPACITY = 100_000  # proofs remembered in process (~150 bytes each)
_PRUNE_PER_CALL = 8


def _digest(jkt: str, jti: str) -> bytes:
    return hashlib.blake2b(f"{jkt}\x00{jti}".encode(), digest_size=16).digest()


class ReplayGuard(Protocol):
    async def first_use(self, jkt: str, jti: str, *, until: float) -> bool:
        """Remember the proof of key `jkt` with identifier `jti` until the clock reads `until`;
        False when it was seen before (or cannot be ruled out)."""


class LocalReplayGuard:
    def __init__(self, *, capacity: int = LOCAL_CAPACITY, clock: Callable[[], float] = time.time) -> None:
        self._capacity = capacity
        self._clock = clock
        self._seen: OrderedDict[bytes, float] = OrderedDict()  # digest -> until, in the order first seen
        self._horizon = -math.inf

    def __len__(self) -> int:
        return len(self._seen)

    async def first_use(self, jkt: str, jti: str, *, until: float) -> bool:
        if until <= self._horizon:
            return False
        now = self._clock()
        key = _digest(jkt, jti)
        known = self._seen.get(key)
        if known is not None and known > now:
            return False
        seen = self._seen
        for _ in range(_PRUNE_PER_CALL):  # forget what expired, oldest first
            oldest = next(iter(seen), None)
            if oldest is None or seen[oldest] > now:
                break
            del seen[oldest]
        if len(seen) >= self._capacity:
            self._horizon = max(self._horizon, seen.popitem(last=False)[1])
        seen[key] = until
        return True


class StoreReplayGuard:
    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    async def first_use(self, jkt: str, jti: str, *, until: float) -> bool:
        ttl = max(1.0, until - self._clock())
        return await self._store.set(dpop_proof_key(_digest(jkt, jti).hex()), "1", ttl, only_if_absent=True)


def replay_guard_for(store: Store) -> ReplayGuard:
    """In process for the in-memory Store, the Store itself for anything shared (Redis)."""
    from shared.storage.memory import MemoryStore

    return LocalReplayGuard() if isinstance(store, MemoryStore) else StoreReplayGuard(store)
