"""tests/e2e: the real-server fixtures (defined in tests/e2e/fixtures.py so other folders can
import the same ones)."""

from tests.e2e.fixtures import (
    deployment,
    e2e_redis,
    pytest_generate_tests,
    pytest_runtest_makereport,
    start_deployment,
)

__all__ = [
    "deployment",
    "e2e_redis",
    "pytest_generate_tests",
    "pytest_runtest_makereport",
    "start_deployment",
]
