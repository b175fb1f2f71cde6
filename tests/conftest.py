"""Root conftest: registers shared fixture plugins once, before any test module imports them
(registering them later, from a test module, triggers pytest's assert-rewrite warning)."""

pytest_plugins = ["tests.fixtures.redis_server", "tests.fixtures.redis_topologies"]
