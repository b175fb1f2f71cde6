"""The authorization server under test: real servers on 127.0.0.1, in both modes, on both stores.

Deployments (`deployment`, ids below):
- `internal-memory`, `internal-redis`: AUTH_MODE=internal, the AS mounted in the MCP app
  (`mcp_server.app.create_app`), as `make dev-internal` serves it;
- `external-memory`, `external-redis`: AUTH_MODE=external, the standalone AS
  (`auth_server.app.create_auth_app`), as `python -m auth_server` serves it.
memory: one in-memory Store handed to the app, the test keeping a handle on it (to plant clients
and codes, or look at what is stored); redis: a real redis-server, the app opening its own
connection from REDIS_URL under a key prefix of its own, the test a second one on that prefix.
Apps run on uvicorn on a free 127.0.0.1 port in the test's event loop (`LocalServer`).

Which deployments a test runs in. A module runs in the deployments its `DEPLOYMENTS` attribute
names (`pytest_generate_tests` below), and one test in others with
`@pytest.mark.parametrize("deployment", ALL_DEPLOYMENTS, indirect=True)` (`in_every_deployment`).
A module without the attribute runs in `DEFAULT_DEPLOYMENTS`, internal-redis alone. Why that is
enough, and why that one:
- The mode does not change what an endpoint does: both apps serve the same routes
  (`auth_server.app.create_auth_routes`) behind the same middleware. What differs is the app
  around them, the issuer (the MCP base URL or AUTH_PORT), the introspection client the standalone
  server knows, and who hears of revocations: the modules where that shows run in every
  deployment (`ALL_DEPLOYMENTS`): metadata and discovery (every advertised endpoint answers, in
  each mode), introspection, revocation, refresh and its grace period, JWT access tokens and
  their keys, the in-process validator, the admin API, rate limits and audit, DPoP and client
  assertions (a proof's URL and an assertion's audience are the issuer's); and the front channel
  end to end in each mode (`iss` on /authorize's redirect, sign-in and consent, a code from the
  pages redeemed for tokens: `in_every_deployment` tests).
- The store does not change what an endpoint asks of it: `Store` is one contract, and
  tests/integration/test_storage_contract.py holds MemoryStore and RedisStore (alone, behind
  sentinels, in a cluster) to it, expiry and atomicity included. A test whose outcome rests on the
  store anyway (a race on one record, a record expiring, the store failing) runs in every
  deployment wherever it lives.
- internal-redis, because Redis is the store whose encoding, key prefixes and real interleaving
  can break what a dict hides (a lone surrogate in a client name stores fine in memory and not in
  Redis), and internal mode is the richer app (the AS inside the MCP server). External mode and
  the memory store keep their own runs through the modules above.

Public URLs. Every server of a deployment answers for fixed public URLs, like replicas behind one
reverse proxy: the issuer is http://127.0.0.1:3232 in internal mode (the MCP server's base URL)
and http://127.0.0.1:3001 in external mode (AUTH_PORT), the MCP resource http://127.0.0.1:3232/mcp
in both. So what a test expects (`settings.issuer`, `RESOURCE`) does not depend on the port a
server got, and settings rebuilt with `configure(**overrides)` equal the server's. Test clients
refuse any request not addressed to their own server, so an absolute URL can never reach whatever
listens on 3232 or 3001 (someone's `make dev-internal`).

Sharing. A server costs ~0.1 s to stop and, in internal mode, ~50 ms to build; per test that
would double the suite. So a module's tests share one default server and one Store per
deployment: every test registers clients of its own (consent is per user and client, a login is
per cookie jar, and each test has its own client and jar), so they never see each other's state.
A test needing other settings gets a server of its own over the same Store
(`make_http(**overrides)`, stopped in the background when the test ends). Each test client connects from a
loopback address of its own (127.1.x.y), so the per-IP rate-limit counters in a shared Store
never mix tests. A module whose tests touch Store-wide state (the JWT signing keys) sets
`STORE_PER_TEST = True` and gets a fresh Store (and servers) for every test.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx2
import pytest

from auth_server.app import create_auth_app
from mcp_server.app import create_app
from shared.settings import Settings
from shared.storage.base import Store
from shared.storage.memory import MemoryStore
from shared.storage.redis import RedisStore
from tests.fixtures.deployments import parametrize_from_module
from tests.fixtures.local_server import LocalServer, stop_all
from tests.integration.auth.helpers import EXTERNAL_AUTH_PORT, make_settings, server_client

Mode = Literal["internal", "external"]
Backend = Literal["memory", "redis"]
HttpFactory = Callable[..., Awaitable[httpx2.AsyncClient]]
Configure = Callable[..., Settings]

ALL_DEPLOYMENTS = [
    pytest.param(("internal", "memory"), id="internal-memory"),
    pytest.param(("internal", "redis"), id="internal-redis"),
    pytest.param(("external", "memory"), id="external-memory"),
    pytest.param(("external", "redis"), id="external-redis"),
]
DEFAULT_DEPLOYMENTS = [ALL_DEPLOYMENTS[1]]  # internal-redis: the module docstring says why
# Internal mode on each store: where what the Store keeps is the point and the mode changes nothing
# (the same routes behind the same middleware in both apps).
BOTH_STORES = [ALL_DEPLOYMENTS[0], ALL_DEPLOYMENTS[1]]
# One deployment of each mode (and so of each store): an attack is performed against both apps a
# fork can deploy, the AS mounted in the MCP server and the standalone one (tests/security's default).
EACH_MODE = [ALL_DEPLOYMENTS[1], ALL_DEPLOYMENTS[2]]
DEPLOYMENTS = ALL_DEPLOYMENTS  # the name tests/security/conftest.py knew it by
in_every_deployment = pytest.mark.parametrize("deployment", ALL_DEPLOYMENTS, indirect=True)
"""One test of a module running in `DEFAULT_DEPLOYMENTS` that runs in every deployment instead."""


def parametrize_deployments(
    metafunc: pytest.Metafunc, fixture: str, default: list[Any] | None = None
) -> None:
    """Run the test in the deployments its module's `DEPLOYMENTS` names (`default`, else
    `DEFAULT_DEPLOYMENTS`, without it), one module-scoped `fixture` per deployment, unless the test
    names its own with a `parametrize` mark on `fixture`."""
    parametrize_from_module(metafunc, fixture, "DEPLOYMENTS", default or DEFAULT_DEPLOYMENTS)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_deployments(metafunc, "deployment")


@dataclass
class RunningAs:
    """One authorization server on 127.0.0.1 and the settings it runs with."""

    server: LocalServer
    settings: Settings

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, **kwargs: Any) -> httpx2.AsyncClient:
        return server_client(self.url, **kwargs)


@dataclass
class AuthServers:
    """A deployment (mode x backend) over one Store: its default server, and more on demand."""

    mode: Mode
    backend: Backend
    redis_url: str | None = None
    store: Store = field(init=False)
    _storage: dict[str, Any] = field(init=False)
    _default: RunningAs | None = field(init=False, default=None)
    _started: list[RunningAs] = field(init=False, default_factory=list)
    _background: list[asyncio.Task[None]] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        if self.backend == "memory":
            self.store = MemoryStore()
            self._storage = {"redis_url": None}
        else:
            assert self.redis_url is not None
            prefix = f"test:{uuid.uuid4().hex}:"
            self.store = RedisStore.from_url(self.redis_url, key_prefix=prefix)
            self._storage = {"redis_url": self.redis_url, "redis_key_prefix": prefix}

    @property
    def label(self) -> str:
        return f"{self.mode}-{self.backend}"

    def settings(self, **overrides: Any) -> Settings:
        """The settings a server of this deployment runs with, plus `overrides`."""
        values: dict[str, Any] = {"auth_mode": self.mode, "auth_port": EXTERNAL_AUTH_PORT, **self._storage}
        values.update(overrides)
        return make_settings(**values)

    async def start(self, *, store: Store | None = None, **overrides: Any) -> RunningAs:
        """A new server of this deployment over this Store (memory: the very same object), or
        over `store` when given."""
        settings = self.settings(**overrides)
        if store is None and self.backend == "memory":
            store = self.store  # redis: the app connects itself, from REDIS_URL and the prefix
        app = create_app(settings, store) if self.mode == "internal" else create_auth_app(settings, store)
        server = await LocalServer.reserve().start(app)
        running = RunningAs(server, settings)
        self._started.append(running)
        return running

    async def default(self) -> RunningAs:
        if self._default is None:
            self._default = await self.start()
        return self._default

    async def stop(self, servers: list[RunningAs]) -> None:
        self._started = [running for running in self._started if running not in servers]
        await stop_all(running.server for running in servers)

    def retire(self, servers: list[RunningAs]) -> None:
        """Stop `servers` in the background: nobody calls them any more, and a test need not wait
        the ~0.1 s uvicorn takes to shut down. `close` waits for them."""
        if servers:
            self.in_background(self.stop(servers))

    def in_background(self, work: Coroutine[Any, Any, None]) -> None:
        self._background.append(asyncio.create_task(work))

    async def close(self) -> None:
        await asyncio.gather(*self._background)
        await self.stop(list(self._started))
        self._default = None
        await self.store.close()


@pytest.fixture(scope="module")
def deployment(request: pytest.FixtureRequest) -> tuple[Mode, Backend, str | None]:
    """(mode, backend, REDIS_URL or None): parametrized by `pytest_generate_tests`."""
    mode, backend = request.param
    redis_url = request.getfixturevalue("redis_url") if backend == "redis" else None
    return mode, backend, redis_url


@pytest.fixture(scope="module")
async def module_servers(deployment: tuple[Mode, Backend, str | None]) -> AsyncIterator[AuthServers]:
    servers = AuthServers(*deployment)
    yield servers
    await servers.close()


@pytest.fixture
async def servers(request: pytest.FixtureRequest, module_servers: AuthServers) -> AsyncIterator[AuthServers]:
    """The deployment this test runs in (shared by the module unless it sets STORE_PER_TEST)."""
    if not getattr(request.module, "STORE_PER_TEST", False):
        yield module_servers
        return
    own = AuthServers(module_servers.mode, module_servers.backend, module_servers.redis_url)
    yield own
    module_servers.in_background(own.close())


@pytest.fixture
def store(servers: AuthServers) -> Store:
    """The Store the servers of this test's deployment use."""
    return servers.store


@pytest.fixture
def configure(servers: AuthServers) -> Configure:
    """`configure(**overrides)`: the settings a server of this deployment gets with those overrides."""
    return servers.settings


@pytest.fixture
def settings(servers: AuthServers) -> Settings:
    """The default server's settings."""
    return servers.settings()


@pytest.fixture
async def make_http(servers: AuthServers) -> AsyncIterator[HttpFactory]:
    """`await make_http(**setting_overrides)`: a fresh client (own cookies and address); with
    overrides, to a server of its own over the same Store, stopped when the test ends."""
    clients: list[httpx2.AsyncClient] = []
    started: list[RunningAs] = []

    async def factory(**overrides: Any) -> httpx2.AsyncClient:
        if overrides:
            running = await servers.start(**overrides)
            started.append(running)
        else:
            running = await servers.default()
        client = running.client()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.aclose()
    servers.retire(started)


@pytest.fixture
async def http(make_http: HttpFactory) -> httpx2.AsyncClient:
    return await make_http()


@pytest.fixture
async def as_url(servers: AuthServers) -> str:
    """Where the default server of this test's deployment listens."""
    return (await servers.default()).url
