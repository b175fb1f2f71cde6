"""What a Store holds, read from its backend (white-box): to show what an attack made it keep."""

from __future__ import annotations

from shared.storage.base import Store
from shared.storage.memory import MemoryStore
from shared.storage.redis import RedisStore


async def stored_keys(store: Store, prefix: str) -> list[str]:
    """The live keys starting with `prefix` (without the backend's own key prefix)."""
    if isinstance(store, MemoryStore):
        return [
            key for key in list(store._data) if key.startswith(prefix) and await store.get(key) is not None
        ]
    assert isinstance(store, RedisStore)
    own = store._prefix
    return [key[len(own) :] async for key in store._redis.scan_iter(match=f"{own}{prefix}*", count=1000)]
