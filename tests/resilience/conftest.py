"""Fixtures for the resilience tests: real server processes, real redis-server, bounded in time.

Every test here starts the project's real entry points (`python -m mcp_server`, `python -m
auth_server`) on free 127.0.0.1 ports and a real `redis-server`; a failure report carries the
server logs of every cluster the test used.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.redis_server import RedisServer, start_redis
from tests.fixtures.redis_topologies import RedisClusterDeployment, SentinelDeployment
from tests.resilience.cluster import Cluster


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server for this module alone, with AOF on, so a test may stop and restart it."""
    server = start_redis(Path(tmp_path_factory.mktemp("redis-aof")), appendonly=True)
    try:
        yield server
    finally:
        server.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.when in ("call", "setup"):
        for name, value in getattr(item, "funcargs", {}).items():
            if isinstance(value, Cluster | SentinelDeployment | RedisClusterDeployment):
                report.sections.append((f"server logs ({name})", value.logs()))
