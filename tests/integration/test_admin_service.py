"""What purge finds to remove on each store (docs/operations.md, "Purge: what there is to purge"),
through the admin service itself (`AdminService.from_settings`), on a memory store whose clock the
test moves and on a real redis-server.

The memory store keeps an expired key until it is touched or its incremental sweep comes round, so
purge has something to drop there; Redis expires keys itself, so there it reports 0 and nothing
expired is left to see. On both, what lives is untouched.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from auth_server.admin.service import AdminService
from shared.storage.memory import MemoryStore
from shared.storage.redis import RedisStore
from tests.integration.auth.helpers import make_settings

BY = "0123456789ab"  # an admin token's fingerprint, as the API passes it


async def test_purge_on_the_memory_store_drops_every_expired_key_at_once() -> None:
    now = [1000.0]
    store = MemoryStore(clock=lambda: now[0], sweep_every=1_000_000)
    service = AdminService.from_settings(make_settings(), store)
    for i in range(20):
        await store.set(f"auth:session:expired-{i}", "{}", ttl=10)
    await store.set("auth:session:alive", "{}", ttl=1000)
    now[0] += 60

    report = await service.purge(after=None, limit=100, by=BY, ip="127.0.0.1")

    assert report.expired_removed == 20
    assert store.raw_size == 1
    assert await store.get("auth:session:alive") == "{}"
    assert (await service.purge(after=None, limit=100, by=BY, ip="127.0.0.1")).expired_removed == 0


async def test_purge_on_redis_has_no_expired_key_to_drop_redis_did_it(redis_url: str) -> None:
    store = RedisStore.from_url(redis_url, key_prefix=f"test:{uuid.uuid4().hex}:")
    try:
        service = AdminService.from_settings(make_settings(redis_url=redis_url), store)
        await store.set("auth:session:expired", "{}", ttl=0.05)
        await store.set("auth:session:alive", "{}", ttl=1000)
        deadline = time.monotonic() + 5
        while await store.ttl("auth:session:expired") is not None:
            assert time.monotonic() < deadline, "the key did not expire"
            await asyncio.sleep(0.02)

        report = await service.purge(after=None, limit=100, by=BY, ip="127.0.0.1")

        assert report.expired_removed == 0
        assert await store.get("auth:session:expired") is None
        assert await store.get("auth:session:alive") == "{}"
    finally:
        await store.close()
