"""Start the project's REAL server processes for end-to-end tests, and always stop them.

A `Deployment` is what a user would run: `python -m mcp_server` alone (AUTH_MODE=internal, or
none), or `python -m auth_server` plus `python -m mcp_server` (AUTH_MODE=external, the MCP server
introspecting with the client the auth server pre-registers from the same settings). Each process
gets a free 127.0.0.1 port, a clean environment (no setting leaks in from the developer's shell
or a `.env`: the working directory is a fresh temp folder), a log file, and is waited for on
/healthz with a bounded timeout. `stop()` terminates, waits, then kills; the kernel also stops
the children if the test process dies outright (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx2

from shared.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable

Mode = Literal["internal", "external", "none"]
StoreKind = Literal["memory", "redis"]

STARTUP_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0

# Every setting name, upper-cased: stripped from the inherited environment so only what a test
# asks for reaches the servers (the Makefile, for one, exports MCP_PORT, AUTH_PORT and HOST).
_SETTING_NAMES = frozenset(name.upper() for name in Settings.model_fields)

# Values every e2e deployment gets unless a test overrides them: a rate limit no test run can
# hit, and JSON logs at INFO so a failure's log tail is useful.
BASE_ENV: dict[str, str] = {
    "HOST": "127.0.0.1",
    "SHOWCASE": "true",  # the conformance suite, resilience and load tests call the showcase's tools
    "RATE_LIMIT_PER_MINUTE": "100000",
    "LOG_LEVEL": "INFO",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:
    if sys.platform == "linux":
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def clean_environ(extra: Mapping[str, str]) -> dict[str, str]:
    # OTEL_* too: a developer's collector must not get (or change) the test servers' traces.
    env = {
        k: v for k, v in os.environ.items() if k.upper() not in _SETTING_NAMES and not k.startswith("OTEL_")
    }
    env.update(extra)
    env["PYTHONUNBUFFERED"] = "1"
    # The working directory is a temp folder (so no `.env` is read): import the project from here.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


class ServerProcess:
    """One server process with its log file; `start()` returns once /healthz answers 200."""

    def __init__(
        self,
        name: str,
        args: list[str],
        env: dict[str, str],
        health_url: str,
        workdir: Path,
        *,
        process_group: bool = False,
    ):
        self.name = name
        self.args = args
        self.env = env
        self.health_url = health_url
        self.workdir = workdir
        self.log_path = workdir / f"{name}.log"
        # A launcher that starts the server as its child (make, a shell script) runs in a group of
        # its own, and stop() signals the whole group: the server is not left behind.
        self.process_group = process_group
        self._process: subprocess.Popen[bytes] | None = None

    def _spawn(self) -> subprocess.Popen[bytes]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            return subprocess.Popen(
                self.args,
                env=self.env,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
                start_new_session=self.process_group,
            )

    def start(self) -> None:
        self._process = self._spawn()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        with httpx2.Client(timeout=1.0, trust_env=False) as client:
            while True:
                if self._process.poll() is not None:
                    code = self._process.returncode
                    self.stop()
                    raise RuntimeError(
                        f"{self.name} exited with {code} before it was healthy:\n{self.log_tail()}"
                    )
                try:
                    if client.get(self.health_url).status_code == 200:
                        return
                except httpx2.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"{self.name} not healthy at {self.health_url} after {STARTUP_TIMEOUT}s:\n"
                        + self.log_tail()
                    )
                time.sleep(0.05)

    def run_expecting_refusal(self, timeout: float = STARTUP_TIMEOUT) -> tuple[int, str]:
        """Start the process and wait for it to exit by itself: (exit code, its output).

        For start-ups that must be refused: if the process answers /healthz instead (it served),
        it is stopped and the test fails with its log.
        """
        self._process = self._spawn()
        deadline = time.monotonic() + timeout
        with httpx2.Client(timeout=1.0, trust_env=False) as client:
            while (code := self._process.poll()) is None:
                try:
                    served = client.get(self.health_url).status_code == 200
                except httpx2.HTTPError:
                    served = False
                if served or time.monotonic() > deadline:
                    self.stop()
                    verdict = "served" if served else f"neither exited nor served within {timeout}s"
                    raise AssertionError(f"{self.name} {verdict} instead of refusing:\n{self.log_tail()}")
                time.sleep(0.05)
        self._process = None
        return code, self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if self.process_group:
            with contextlib.suppress(ProcessLookupError):  # the group may be gone with its leader
                os.killpg(process.pid, signal.SIGINT)
        elif process.poll() is not None:
            return
        else:
            process.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown (lifespan closes the store)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)
        if self.process_group:  # the launcher is gone; wait for the rest of its group, bounded
            deadline = time.monotonic() + STOP_TIMEOUT
            while _group_alive(process.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"


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
