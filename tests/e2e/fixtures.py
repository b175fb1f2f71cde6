"""Fixtures for end-to-end tests: the real server processes, in both modes, on both stores.

Registered for tests/e2e by its conftest.py; other folders (tests/browser) import them from here.

`deployment` is module-scoped (one set of processes shared by a module's tests) and parametrized
over internal/external x memory/redis by `pytest_generate_tests` (which a conftest using it
registers). A module tunes the processes with a module-level `DEPLOYMENT_ENV = {...}` (settings as
environment variables) and narrows the matrix with `PROCESS_DEPLOYMENTS = [...]`, one test with
`@pytest.mark.parametrize("deployment", [...], indirect=True)`, using the lists below (a real
client's walk through the processes: `EACH_MODE_AND_STORE`, two deployments instead of four).
`start_deployment(...)` starts an extra, function-scoped one with its own settings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.servers import Deployment, Mode, StoreKind, build_deployment
from tests.fixtures.deployments import parametrize_from_module
from tests.fixtures.redis_server import RedisServer, start_redis

ALL_DEPLOYMENTS = [
    pytest.param(("internal", "memory"), id="internal-memory"),
    pytest.param(("internal", "redis"), id="internal-redis"),
    pytest.param(("external", "memory"), id="external-memory"),
    pytest.param(("external", "redis"), id="external-redis"),
]
BOTH_MODES_MEMORY = [ALL_DEPLOYMENTS[0], ALL_DEPLOYMENTS[2]]
# Each mode once and each store once, in two deployments: internal-memory (what `make dev-internal`
# runs) and external-redis (a production split). For a real client's run through the real
# processes, where what the mode changes shows (one origin or two, introspection) and the store's
# part is the same Store contract the in-process tests run in all four deployments
# (tests/integration/auth, tests/integration/test_storage_contract.py).
EACH_MODE_AND_STORE = [ALL_DEPLOYMENTS[0], ALL_DEPLOYMENTS[3]]


@pytest.fixture(scope="session")
def e2e_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for every e2e deployment; each deployment uses its own key prefix."""
    server = start_redis(tmp_path_factory.mktemp("e2e-redis"))
    yield server
    server.stop()


def _start(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    mode: Mode,
    store: StoreKind,
    env: dict[str, str],
) -> Deployment:
    redis_url = request.getfixturevalue("e2e_redis").url if store == "redis" else None
    workdir = Path(tmp_path_factory.mktemp(f"{mode}-{store}"))
    return build_deployment(mode, store, workdir, redis_url=redis_url, env=env).start()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`deployment` runs in the module's `PROCESS_DEPLOYMENTS` (default: `ALL_DEPLOYMENTS`)."""
    parametrize_from_module(metafunc, "deployment", "PROCESS_DEPLOYMENTS", ALL_DEPLOYMENTS)


@pytest.fixture(scope="module")
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    mode, store = request.param
    env = dict(getattr(request.module, "DEPLOYMENT_ENV", {}))
    running = _start(request, tmp_path_factory, mode, store, env)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def start_deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Deployment]]:
    """Start extra deployments for one test (stopped at its end): `start_deployment(mode, store, env)`."""
    started: list[Deployment] = []

    def start(mode: Mode, store: StoreKind = "memory", env: dict[str, str] | None = None) -> Deployment:
        running = _start(request, tmp_path_factory, mode, store, dict(env or {}))
        started.append(running)
        return running

    try:
        yield start
    finally:
        for running in started:
            running.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """On failure, attach the server logs of the deployments the test used."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.when in ("call", "setup"):
        funcargs = getattr(item, "funcargs", {})
        for value in funcargs.values():
            if isinstance(value, Deployment):
                report.sections.append((f"server logs ({value.label})", value.logs()))
