"""tests/deployment: the real servers behind Debian's nginx and Caddy (tests/deployment/proxies.py),
on the e2e suite's Redis."""

from tests.e2e.fixtures import e2e_redis, pytest_runtest_makereport

__all__ = ["e2e_redis", "pytest_runtest_makereport"]
