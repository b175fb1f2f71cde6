"""Attacks performed against real servers (issue 9 and every attack found since).

Each test module here is one family of attacks; each test performs one attack against servers
started on 127.0.0.1 in every mode it applies to, and asserts that it fails. Fixtures several
modules share live in this file, one section per concern; reuse the project's launchers
(tests/e2e/servers.py for real processes, tests/fixtures/ for in-process uvicorn, the Redis
fixture of tests/fixtures/redis_server.py) rather than writing new ones.
"""

from tests.e2e.fixtures import deployment, e2e_redis, pytest_runtest_makereport, start_deployment

# --- real server processes ---------------------------------------------------------------------
# `deployment`: module-scoped, over internal/external x memory/redis (tune with a module-level
# DEPLOYMENT_ENV, narrow with indirect parametrization); `start_deployment(mode, store, env)`: an
# extra one for one test. Both from tests/e2e/fixtures.py, failing tests get the servers' logs.
__all__ = ["deployment", "e2e_redis", "pytest_runtest_makereport", "start_deployment"]
