"""Every authorization-server test runs twice: on the in-memory Store and on a real redis-server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx2
import pytest

from shared.settings import Settings
from shared.storage.base import Store
from shared.storage.memory import MemoryStore
from shared.storage.redis import RedisStore
from tests.integration.auth.helpers import build_app, http_client, make_settings

HttpFactory = Callable[..., Awaitable[httpx2.AsyncClient]]


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    backend: Store
    if request.param == "memory":
        backend = MemoryStore()
    else:
        url = request.getfixturevalue("redis_url")
        backend = RedisStore.from_url(url, key_prefix=f"test:{uuid.uuid4().hex}:")
    yield backend
    await backend.close()


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture
async def make_http(store: Store) -> AsyncIterator[HttpFactory]:
    """`await make_http(**setting_overrides)`: an HTTP client on a fresh app over `store`."""
    clients: list[httpx2.AsyncClient] = []

    async def factory(**overrides: Any) -> httpx2.AsyncClient:
        settings = make_settings(**overrides)
        client = http_client(build_app(settings, store), settings)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.aclose()


@pytest.fixture
async def http(make_http: HttpFactory) -> httpx2.AsyncClient:
    return await make_http()
