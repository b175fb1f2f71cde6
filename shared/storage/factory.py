"""Chooses the storage backend from settings: Redis when REDIS_URL is set, else in-memory."""

from __future__ import annotations

from shared.settings import Settings
from shared.storage.base import Store


def open_store(settings: Settings) -> Store:
    if settings.redis_url:
        from shared.storage.redis import RedisStore

        return RedisStore.from_settings(settings)
    from shared.storage.memory import MemoryStore

    return MemoryStore()
