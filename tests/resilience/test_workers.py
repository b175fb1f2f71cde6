"""Every core: `--workers N` / WEB_CONCURRENCY runs N worker processes on one port, sharing Redis.

The real entry points with two workers each (`python -m mcp_server`, and in external mode
`python -m auth_server` too) on a real redis-server. Which worker answered a request is read
from the kernel, not from the server: the client's local port names the accepted socket
(`/proc/net/tcp`), and the worker holding that socket is the one whose file descriptors include
it. Each test pins one client connection to one worker and another to the other worker, does the
first half of something on one and the second half on the other, and checks from the kernel
that the two halves were served by different processes:

- a token minted through one worker (every step of the OAuth flow there) is accepted by the
  other; with the authorization server in workers too, the code issued by one of its workers is
  exchanged at the other;
- a note written through one worker is read through the other;
- a 2026-07-28 multi-round call (an input-required result whose `requestState` the server
  sealed) asked on one worker is completed on the other, with no REQUEST_STATE_KEYS set: the
  supervisor gave its workers one key.

And what must not start: several workers on the in-memory store, with stateful 2025-11-25
sessions, or with the legacy SSE transport, each refused with one line naming the setting.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.e2e.servers import BASE_ENV, PYTHON, ServerProcess, clean_environ, free_port
from tests.fixtures.redis_server import RedisServer
from tests.resilience.cluster import (
    CALLBACK,
    TIMEOUT,
    Cluster,
    authorization_code,
    build_cluster,
    metadata,
    mint,
    modern_call,
    pkce,
    register,
    rpc_result,
    running,
    structured,
    token_request,
)
from tests.resilience.cluster import ServerProcess as ClusterProcess

pytestmark = pytest.mark.timeout(120)

WORKERS = 2
WORKER_ENV = {"WEB_CONCURRENCY": str(WORKERS), "MCP_SESSION_MODE": "stateless", "LEGACY_SSE": "false"}
PIN_ATTEMPTS = 80
WORKERS_STARTUP_TIMEOUT = 90.0


# --- which worker answered: the kernel's view ---------------------------------------------------


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    return inodes


def _tcp_inode(local_port: int, *, remote_port: int | None = None, listening: bool = False) -> str | None:
    """The inode of the IPv4 TCP socket bound to `local_port` (and connected to `remote_port`)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
        if int(local.rsplit(":", 1)[1], 16) != local_port:
            continue
        if listening and state == "0A":
            return inode
        if remote_port is not None and int(remote.rsplit(":", 1)[1], 16) == remote_port:
            return inode
    return None


@dataclass
class Workers:
    """The worker processes behind one supervisor's port, and who served what."""

    supervisor: ClusterProcess
    port: int
    served: list[int] = field(default_factory=list)  # worker pid of every response seen, in order

    def pids(self) -> list[int]:
        """The supervisor's children that hold the listening socket: its workers."""
        listening = _tcp_inode(self.port, listening=True)
        assert listening is not None, f"nothing listens on {self.port}"
        pid = self.supervisor.pid()
        return sorted(child for child in _children(pid) if listening in _socket_inodes(child))

    def serving(self, response: httpx2.Response) -> int:
        """The worker that holds the connection `response` came on."""
        client_port = response.extensions["network_stream"].get_extra_info("client_addr")[1]
        inode = _tcp_inode(self.port, remote_port=client_port)
        assert inode is not None, f"no server socket for client port {client_port}"
        holders = [pid for pid in self.pids() if inode in _socket_inodes(pid)]
        assert len(holders) == 1, f"socket {inode} held by {holders}"
        return holders[0]

    def pinned(self, worker: int) -> httpx2.HTTPTransport:
        """A transport whose one keep-alive connection is accepted by `worker` (new connections
        are tried until the kernel hands one to it)."""
        for _ in range(PIN_ATTEMPTS):
            transport = httpx2.HTTPTransport(
                limits=httpx2.Limits(max_connections=1, max_keepalive_connections=1)
            )
            response = transport.handle_request(
                httpx2.Request("GET", f"http://127.0.0.1:{self.port}/healthz")
            )
            response.read()
            served_by = self.serving(response)
            response.close()
            if served_by == worker:
                return transport
            transport.close()
        raise AssertionError(f"no connection reached worker {worker} in {PIN_ATTEMPTS} attempts")

    def record(self, response: httpx2.Response) -> None:
        if response.request.url.port == self.port:
            self.served.append(self.serving(response))


def client_on(*pins: tuple[Workers, int]) -> httpx2.Client:
    """A client whose requests to each given server go over one connection to the given worker,
    recording (in `Workers.served`) which worker answered each of them."""
    mounts = {f"http://127.0.0.1:{workers.port}": workers.pinned(pid) for workers, pid in pins}
    hooks = [workers.record for workers, _ in pins]
    return httpx2.Client(
        mounts=mounts,
        timeout=TIMEOUT,
        trust_env=False,
        follow_redirects=False,
        event_hooks={"response": hooks},
    )


# --- deployments ------------------------------------------------------------------------------


def with_workers(cluster: Cluster, *, own_request_state_key: bool) -> Cluster:
    if not own_request_state_key:
        for process in cluster.processes:
            process.env.pop("REQUEST_STATE_KEYS", None)
        cluster.env.pop("REQUEST_STATE_KEYS", None)
    return cluster


@contextlib.contextmanager
def running_workers(cluster: Cluster) -> Iterator[Cluster]:
    """`running`, with room for three interpreters per server to start on a busy machine (the
    supervisor checks the app, then each worker builds its own)."""
    for process in cluster.processes:
        process.launch()
    try:
        for process in cluster.processes:
            process.wait_healthy(WORKERS_STARTUP_TIMEOUT)
    except BaseException:
        cluster.stop()
        raise
    with running(cluster):
        yield cluster


@pytest.fixture(scope="module")
def internal_workers(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    cluster = build_cluster(
        "internal",
        Path(tmp_path_factory.mktemp("workers-internal")),
        redis_url=redis_server.url,
        instances=1,
        env=WORKER_ENV,
    )
    with running_workers(with_workers(cluster, own_request_state_key=False)):
        yield cluster


@pytest.fixture(scope="module")
def external_workers(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    cluster = build_cluster(
        "external",
        Path(tmp_path_factory.mktemp("workers-external")),
        redis_url=redis_server.url,
        instances=1,
        env={**WORKER_ENV, "INTROSPECTION_CACHE_TTL": "0"},  # every request asks an AS worker
    )
    with running_workers(with_workers(cluster, own_request_state_key=True)):
        yield cluster


def mcp_workers(cluster: Cluster) -> Workers:
    return Workers(cluster.instances[0], cluster.ports[0])


def two(workers: Workers) -> tuple[int, int]:
    pids = workers.pids()
    assert len(pids) == WORKERS, f"expected {WORKERS} workers, found {pids}"
    return pids[0], pids[1]


def tool_call(
    http: httpx2.Client, cluster: Cluster, token: str, tool: str, **arguments: Any
) -> dict[str, Any]:
    body, headers = modern_call(tool, arguments, token)
    return rpc_result(http.post(cluster.mcp_url, json=body, headers=headers))


def eliciting_call(
    tool: str, token: str, answers: dict[str, Any] | None = None, request_state: str | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """A 2026-07-28 tools/call from a client that can answer form elicitations, with the answers
    and the echoed requestState of an earlier round when given."""
    body, headers = modern_call(tool, {}, token)
    params = body["params"]
    params["_meta"]["io.modelcontextprotocol/clientCapabilities"] = {"elicitation": {"form": {}}}
    if answers is not None:
        params["inputResponses"] = answers
    if request_state is not None:
        params["requestState"] = request_state
    return body, headers


# --- the tests --------------------------------------------------------------------------------


def test_the_supervisor_runs_two_workers_and_says_so_once(internal_workers: Cluster) -> None:
    workers = mcp_workers(internal_workers)
    pids = two(workers)
    assert internal_workers.instances[0].pid() not in pids
    log = internal_workers.log_text()
    assert log.count("MCP server ready") == 1, log[-3000:]
    assert log.count("workers: 2 processes on this port (WEB_CONCURRENCY)") == 1
    assert log.count("sealed with a key generated for these workers") == 1


def test_a_token_minted_through_one_worker_is_accepted_by_the_other(internal_workers: Cluster) -> None:
    workers = mcp_workers(internal_workers)
    first, second = two(workers)
    with client_on((workers, first)) as on_first, client_on((workers, second)) as on_second:
        minted = mint(internal_workers, on_first)  # discovery, registration, login, consent, token
        assert set(workers.served) == {first}, workers.served
        workers.served.clear()
        identity = structured(tool_call(on_second, internal_workers, minted.access_token, "whoami"))
        assert workers.served == [second]
    assert identity["subject"] == "demo"
    assert identity["client_id"] == minted.client_id


def test_a_note_written_through_one_worker_is_read_through_the_other(internal_workers: Cluster) -> None:
    workers = mcp_workers(internal_workers)
    first, second = two(workers)
    with client_on((workers, first)) as on_first, client_on((workers, second)) as on_second:
        token = mint(internal_workers, on_first).access_token
        workers.served.clear()
        note = structured(tool_call(on_first, internal_workers, token, "notes_add", text="from one worker"))
        listed = structured(tool_call(on_second, internal_workers, token, "notes_list"))
        deleted = structured(
            tool_call(on_second, internal_workers, token, "notes_delete", note_id=note["id"])
        )
        after = structured(tool_call(on_first, internal_workers, token, "notes_list"))
        assert workers.served == [first, second, second, first]
    assert note["id"] in [n["id"] for n in listed["notes"]]
    assert deleted["deleted"] is True
    assert note["id"] not in [n["id"] for n in after["notes"]]


def test_a_multi_round_call_asked_on_one_worker_is_completed_on_the_other(internal_workers: Cluster) -> None:
    workers = mcp_workers(internal_workers)
    first, second = two(workers)
    tool = "test_input_required_result_request_state"
    with client_on((workers, first)) as on_first, client_on((workers, second)) as on_second:
        token = mint(internal_workers, on_first).access_token
        workers.served.clear()
        body, headers = eliciting_call(tool, token)
        asked = rpc_result(on_first.post(internal_workers.mcp_url, json=body, headers=headers))
        assert asked["resultType"] == "input_required", asked
        assert "confirm" in asked["inputRequests"]
        accept = {"confirm": {"action": "accept", "content": {"ok": True}}}
        body, headers = eliciting_call(tool, token, accept, asked["requestState"])
        answered = rpc_result(on_second.post(internal_workers.mcp_url, json=body, headers=headers))
        assert workers.served == [first, second]
    text = answered["content"][0]["text"]
    assert "state-ok" in text, answered
    assert "Confirmed: True" in text, answered


def test_authorization_server_workers_share_codes_and_the_mcp_workers_introspect_at_either(
    external_workers: Cluster,
) -> None:
    assert external_workers.auth is not None
    assert external_workers.auth_port is not None
    auth = Workers(external_workers.auth, external_workers.auth_port)
    mcp = mcp_workers(external_workers)
    as_first, as_second = two(auth)
    mcp_first, mcp_second = two(mcp)
    with (
        client_on((auth, as_first), (mcp, mcp_first)) as on_first,
        client_on((auth, as_second), (mcp, mcp_second)) as on_second,
    ):
        meta = metadata(on_first, external_workers)
        client_id = register(on_first, meta)
        verifier, challenge = pkce()
        code = authorization_code(on_first, external_workers, meta, client_id, challenge)
        assert set(auth.served) == {as_first}, auth.served  # registration, login, consent, the code
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": CALLBACK,
            "client_id": client_id,
            "code_verifier": verifier,
            "resource": external_workers.mcp_url,
        }
        exchanged = token_request(on_second, meta, form)
        assert exchanged.status_code == 200, exchanged.text
        assert auth.served[-1] == as_second
        token = exchanged.json()["access_token"]
        mcp.served.clear()
        seen = [
            structured(tool_call(client, external_workers, token, "whoami"))["subject"]
            for client in (on_first, on_second)
        ]
        assert mcp.served == [mcp_first, mcp_second]
    assert seen == ["demo", "demo"]


def test_a_worker_that_dies_is_replaced_and_the_other_serves_meanwhile(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    cluster = build_cluster("none", tmp_path, redis_url=redis_server.url, instances=1, env=WORKER_ENV)
    with running_workers(cluster):
        workers = mcp_workers(cluster)
        first, second = two(workers)
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 30
        with httpx2.Client(timeout=TIMEOUT, trust_env=False) as http:
            while True:
                assert http.get(f"{cluster.public_url}/healthz").status_code == 200
                pids = workers.pids()
                if len(pids) == WORKERS and first not in pids:
                    break
                assert time.monotonic() < deadline, f"no replacement for worker {first}: {pids}"
                time.sleep(0.2)
    assert second in pids


# --- what must not start ----------------------------------------------------------------------


def refused(tmp_path: Path, module: str, env: dict[str, str], *args: str) -> tuple[int, str]:
    port = free_port()
    port_setting = "MCP_PORT" if module == "mcp_server" else "AUTH_PORT"
    settings = {**BASE_ENV, "AUTH_MODE": "internal" if module == "mcp_server" else "external"}
    settings.update({port_setting: str(port), **env})
    process = ServerProcess(
        module,
        [PYTHON, "-m", module, *args],
        clean_environ(settings),
        f"http://127.0.0.1:{port}/healthz",
        tmp_path,
    )
    return process.run_expecting_refusal()


def problem_lines(output: str) -> list[str]:
    return [line.strip() for line in output.splitlines() if line.startswith("  ") and ": " in line]


def test_two_workers_on_the_memory_store_are_refused_in_one_line(tmp_path: Path) -> None:
    code, output = refused(
        tmp_path, "mcp_server", {"MCP_SESSION_MODE": "stateless", "LEGACY_SSE": "false"}, "--workers", "2"
    )
    assert code != 0
    assert "Refusing to start the MCP server with WEB_CONCURRENCY=2 workers" in output
    lines = problem_lines(output)
    assert len(lines) == 1, output
    assert lines[0].startswith("REDIS_URL: unset, so each of the 2 workers"), output
    assert "Traceback" not in output
    assert "MCP server ready" not in output


def test_the_authorization_server_refuses_workers_on_the_memory_store(tmp_path: Path) -> None:
    code, output = refused(tmp_path, "auth_server", {"WEB_CONCURRENCY": "3"})
    assert code != 0
    assert "Refusing to start the authorization server with WEB_CONCURRENCY=3 workers" in output
    assert [line.split(":")[0] for line in problem_lines(output)] == ["REDIS_URL"], output


def test_stateful_sessions_and_legacy_sse_with_workers_are_refused_with_the_way_out(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    code, output = refused(tmp_path, "mcp_server", {"REDIS_URL": redis_server.url}, "--workers", "2")
    assert code != 0
    lines = problem_lines(output)
    assert [line.split(":")[0] for line in lines] == ["MCP_SESSION_MODE", "LEGACY_SSE"], output
    assert "MCP_SESSION_MODE=stateless" in lines[0]
    assert "one worker per port" in lines[0]
    assert "LEGACY_SSE=false" in lines[1]


# --- metrics ----------------------------------------------------------------------------------


def scrape(http: httpx2.Client, cluster: Cluster) -> dict[str, float]:
    """/metrics as name{labels} -> value (a loopback client: allowed without METRICS_TOKEN)."""
    response = http.get(f"{cluster.public_url}/metrics")
    assert response.status_code == 200, response.text
    samples = {}
    for line in response.text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


MCP_CALLS = 'mcpref_http_requests_total{method="POST",route="/mcp",status="200"}'


def test_metrics_are_summed_over_the_workers_whichever_answers_the_scrape(internal_workers: Cluster) -> None:
    workers = mcp_workers(internal_workers)
    first, second = two(workers)
    with client_on((workers, first)) as on_first, client_on((workers, second)) as on_second:
        token = mint(internal_workers, on_first).access_token
        before = scrape(on_first, internal_workers)
        for _ in range(3):
            tool_call(on_first, internal_workers, token, "whoami")
        for _ in range(4):
            tool_call(on_second, internal_workers, token, "whoami")
        seen_by_first = scrape(on_first, internal_workers)
        seen_by_second = scrape(on_second, internal_workers)
        # The tenant cache counts in plain integers, written to the shared files every few
        # seconds and at each scrape: the other worker's share arrives within that interval.
        deadline = time.monotonic() + 30
        while True:
            tenants = scrape(on_second, internal_workers)
            hits = tenants.get("mcpref_tenant_cache_hits_total", 0) + tenants.get(
                "mcpref_tenant_cache_misses_total", 0
            )
            gained = (
                hits
                - before.get("mcpref_tenant_cache_hits_total", 0)
                - before.get("mcpref_tenant_cache_misses_total", 0)
            )
            if gained >= 7:
                break
            assert time.monotonic() < deadline, f"the tenant counters never summed both workers: {gained}"
            time.sleep(0.5)
        assert set(workers.served) == {first, second}
    assert seen_by_first[MCP_CALLS] - before.get(MCP_CALLS, 0) == 7
    assert seen_by_second[MCP_CALLS] == seen_by_first[MCP_CALLS]
    assert not any(name.startswith("process_") for name in seen_by_first), "per-process series have no sum"
