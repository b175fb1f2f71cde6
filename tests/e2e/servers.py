"""Start the project's REAL server processes for end-to-end tests, and always stop them.

A `Deployment` is what a user would run: `python -m mcp_server` alone (AUTH_MODE=internal, or
none), or `python -m auth_server` plus `python -m mcp_server` (AUTH_MODE=external, the MCP server
introspecting with the client the auth server pre-registers from the same settings). Each process
is a `ServerProcess` of tests/fixtures/launch.py: a free 127.0.0.1 port, a clean environment (no
setting leaks in from the developer's shell or a `.env`: the working directory is a fresh temp
folder), a log file, waited for on /healthz with a bounded timeout, stopped with SIGINT then
killed, and by the kernel if the test process dies outright (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tests.fixtures.launch import (
    PROCESS_STARTUP_TIMEOUT,
    PYTHON,
    REPO_ROOT,
    STOP_TIMEOUT,
    ServerProcess,
    clean_environ,
    die_with_parent,
    free_port,
)

# The process launcher lives in tests/fixtures/launch.py; these names stay importable from here.
__all__ = [
    "BASE_ENV",
    "PYTHON",
    "REPO_ROOT",
    "STARTUP_TIMEOUT",
    "STOP_TIMEOUT",
    "Deployment",
    "Mode",
    "ServerProcess",
    "StoreKind",
    "build_deployment",
    "clean_environ",
    "free_port",
]
STARTUP_TIMEOUT = PROCESS_STARTUP_TIMEOUT
_die_with_parent = die_with_parent

Mode = Literal["internal", "external", "none"]
StoreKind = Literal["memory", "redis"]

# Values every e2e deployment gets unless a test overrides them: a rate limit no test run can
# hit, and JSON logs at INFO so a failure's log tail is useful.
BASE_ENV: dict[str, str] = {
    "HOST": "127.0.0.1",
    "SHOWCASE": "true",  # the conformance suite, resilience and load tests call the showcase's tools
    "RATE_LIMIT_PER_MINUTE": "100000",
    "LOG_LEVEL": "INFO",
}


@dataclass
class Deployment:
    """A running deployment and the URLs a client needs."""

    mode: Mode
    store: StoreKind
    mcp_port: int
    auth_port: int | None
    env: dict[str, str]
    workdir: Path
    processes: list[ServerProcess] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.mcp_port}"

    @property
    def mcp_url(self) -> str:
        return f"{self.base_url}/mcp"

    @property
    def issuer(self) -> str:
        if self.mode == "external":
            return f"http://127.0.0.1:{self.auth_port}"
        return self.base_url

    @property
    def introspection_client_id(self) -> str:
        return self.env["INTROSPECTION_CLIENT_ID"]

    @property
    def introspection_client_secret(self) -> str:
        return self.env["INTROSPECTION_CLIENT_SECRET"]

    @property
    def label(self) -> str:
        return f"{self.mode}-{self.store}"

    def start(self) -> Deployment:
        try:
            for process in self.processes:
                process.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} log ---\n{p.log_tail()}" for p in self.processes)


def build_deployment(
    mode: Mode,
    store: StoreKind,
    workdir: Path,
    *,
    redis_url: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Deployment:
    """Describe (not start) a deployment; call `.start()` (and always `.stop()`)."""
    mcp_port = free_port()
    auth_port = free_port() if mode == "external" else None
    settings_env: dict[str, str] = {
        **BASE_ENV,
        "AUTH_MODE": mode,
        "MCP_PORT": str(mcp_port),
        # The introspection client is a pre-registered confidential client on the AS side and the
        # credential the MCP server introspects with; both processes read the same values.
        "INTROSPECTION_CLIENT_ID": "e2e-resource-server",
        "INTROSPECTION_CLIENT_SECRET": f"e2e-secret-{uuid.uuid4().hex}",
    }
    if auth_port is not None:
        settings_env["AUTH_PORT"] = str(auth_port)
    if store == "redis":
        if not redis_url:
            raise ValueError("a Redis deployment needs redis_url")
        settings_env["REDIS_URL"] = redis_url
        settings_env["REDIS_KEY_PREFIX"] = f"e2e:{uuid.uuid4().hex[:12]}:"
    settings_env.update(env or {})
    full_env = clean_environ(settings_env)

    deployment = Deployment(mode, store, mcp_port, auth_port, settings_env, workdir)
    if mode == "external":
        deployment.processes.append(
            ServerProcess(
                "auth_server",
                [PYTHON, "-m", "auth_server"],
                full_env,
                f"http://127.0.0.1:{auth_port}/healthz",
                workdir,
            )
        )
    deployment.processes.append(
        ServerProcess(
            "mcp_server",
            [PYTHON, "-m", "mcp_server", "--port", str(mcp_port)],
            full_env,
            f"http://127.0.0.1:{mcp_port}/healthz",
            workdir,
        )
    )
    return deployment
