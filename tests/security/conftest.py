"""Attacks performed against real servers (issue 9 and every attack found since).

Each test module here is one family of attacks; each test performs one attack against servers
started on 127.0.0.1 in every mode it applies to, and asserts that it fails. Fixtures several
modules share live in this file, one section per concern; reuse the project's launchers
(tests/e2e/servers.py for real processes, tests/fixtures/ for in-process uvicorn, the Redis
fixture of tests/fixtures/redis_server.py) rather than writing new ones.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.e2e import fixtures as e2e
from tests.e2e.fixtures import deployment, e2e_redis, pytest_runtest_makereport, start_deployment
from tests.fixtures.live_server import live_server
from tests.integration.auth.conftest import (
    EACH_MODE,
    AuthServers,
    Backend,
    Mode,
    as_url,
    configure,
    http,
    make_http,
    parametrize_deployments,
    servers,
    settings,
    store,
)
from tests.security.document_host import DocumentHost

# --- real server processes ---------------------------------------------------------------------
# `deployment`: module-scoped, over internal/external x memory/redis (tune with a module-level
# DEPLOYMENT_ENV, narrow with indirect parametrization); `start_deployment(mode, store, env)`: an
# extra one for one test. Both from tests/e2e/fixtures.py, failing tests get the servers' logs.
__all__ = ["deployment", "e2e_redis", "pytest_runtest_makereport", "start_deployment"]


# --- the authorization server in-process, in its deployments ----------------------------------
# Real uvicorn on 127.0.0.1 in the test's loop, internal/external x memory/redis, each test client
# from a loopback address of its own, and a handle on the Store the servers use: the fixtures of
# tests/integration/auth (its conftest.py says how they share servers and Stores): `http`,
# `make_http(**settings)`, `servers`, `store`, `settings`, `configure`, `as_url`. Here their matrix
# is `as_deployment` (`deployment` above is the real processes'), chosen as there: a module sets
# `DEPLOYMENTS = ALL_DEPLOYMENTS` (tests/integration/auth/conftest.py) when what it attacks depends
# on the mode and the store (the admin API in each app, refresh rotation), `BOTH_STORES` when only
# the store's part matters (what an attack makes the Store keep, counters); otherwise it runs in
# EACH_MODE (internal-redis and external-memory): every attack is performed against both apps a
# fork can deploy, the AS mounted in the MCP server and the standalone one.
__all__ += ["as_url", "configure", "http", "make_http", "servers", "settings", "store"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_deployments(metafunc, "as_deployment", EACH_MODE)
    e2e.pytest_generate_tests(metafunc)  # `deployment`, the real processes'


@pytest.fixture(scope="module")
def as_deployment(request: pytest.FixtureRequest) -> tuple[Mode, Backend, str | None]:
    """(mode, backend, REDIS_URL or None): parametrized by `pytest_generate_tests`."""
    mode, backend = request.param
    redis_url = request.getfixturevalue("redis_url") if backend == "redis" else None
    return mode, backend, redis_url


@pytest.fixture(scope="module")
async def module_servers(as_deployment: tuple[Mode, Backend, str | None]) -> AsyncIterator[AuthServers]:
    servers = AuthServers(*as_deployment)
    yield servers
    await servers.close()


# --- a web host an attacker controls (client ID metadata documents) -----------------------------
@pytest.fixture(scope="session")
def document_host() -> Iterator[DocumentHost]:
    host = DocumentHost()
    with live_server(host.app):
        yield host
