"""`make bench`: tools/call throughput and latency, measured with wrk, every ratio in one run.

Scenarios (each at 16 and 64 connections; `scripts/bench/tools_call.lua` posts `echo`):
- bare:               a Starlette route returning small JSON (the ceiling for Python ASGI here)
- none:               AUTH_MODE=none, both protocol revisions
- internal:           AUTH_MODE=internal (in-process validator), both revisions
- internal-dpop:      internal with DPoP-bound tokens (RFC 9449): `Authorization: DPoP` and a
                      fresh proof per request (a signature check, `ath`, `htu`, the `jti` kept in
                      process with the memory store), against internal's Bearer in the same run
- external-cached:    AUTH_MODE=external, opaque tokens, RFC 7662 introspection with the default
                      cache (INTROSPECTION_CACHE_TTL=30 s), both revisions
- external-uncached:  the same with INTROSPECTION_CACHE_TTL=0: one introspection call per request
- jwt:                AUTH_MODE=external, TOKEN_FORMAT=jwt (RFC 9068, local signature checks), both
- internal-sse:       internal with MCP_JSON_RESPONSES=never, 2025-11-25 only: every request
                      answered as an SSE stream, as the SDK does (what 2025-11-25 cost before
                      mcp_server/responses.py), against internal's JSON answers in the same run
- workers-1, workers-2: internal mode on a real redis-server, MCP_SESSION_MODE=stateless, run by
                      `python -m mcp_server --workers N` (the real supervisor), with nothing pinned:
                      what a second worker process adds on this machine's cores (wrk shares them)
- internal-tenant:    internal, with a tenant lookup (mcp_server/tenants.py) that takes 40 ms, as a
                      customer database would: what the cache (TENANT_CACHE_TTL) leaves of that cost;
                      the server's own count of lookups and their mean time come from /metrics

All servers are started first and stay up; the cells are then measured in interleaved rounds
(`--rounds`, default 5, of `--duration` = 3 seconds each), cells compared with each other back to
back; every figure is the median over the rounds, and every ratio the median of the per-round
ratios, so background load drifts across compared cells alike and the ratios hold on a busy machine.
Each cell also reports the MCP server's own CPU time per request (user + system, from /proc, read
around each measurement; its workers included): other load slows a server without changing what a
request costs it, so the 2025-11-25 / 2026-07-28 comparison is given that way too.
Every server runs under the same uvicorn settings (`scripts/bench/serve.py`), pinned to CPU 1;
wrk and the authorization server run on CPU 0 (`--no-pin` to let the kernel place them). Tokens
come from the real OAuth flow (4 users x 2 clients x 4 tokens, used round-robin); 2025-11-25
requests go to sessions opened with `initialize` for each token. Before each measurement one
request per token is checked to return the echoed text; a measurement with any socket error or
non-2xx status fails the run. `--compare-pure` (default on) repeats bare and internal on
uvicorn's pure-Python HTTP parser (h11 instead of httptools), to show what the parser changes.

The validator and tracing micro-benchmarks (`scripts/bench/validation.py`, `tracing.py`) run in
the same invocation.
Results: bench-results/latest.json and bench-results/latest.md (printed too). `--soak SECONDS`
runs the memory soak instead (`make bench-soak`): a fixed client set for that long, resident size
sampled every 30 s, written to bench-results/soak.json and soak.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import httpx2

from scripts.bench.common import (
    LEGACY,
    MODERN,
    bench_users,
    check_tools_call,
    mint_tokens,
    open_session,
    proof_for,
)
from tests.e2e.servers import PYTHON, REPO_ROOT, ServerProcess, clean_environ, free_port
from tests.fixtures.dpop_client import DPoPKey
from tests.fixtures.redis_server import start_redis

RESULTS_DIR = REPO_ROOT / "bench-results"
LUA = Path(__file__).resolve().parent / "tools_call.lua"
CONNECTIONS = (16, 64)
SETUP_ORDER = (
    "bare",
    "none",
    "internal",
    "internal-dpop",
    "internal-sse",
    "workers-1",
    "workers-2",
    "internal-tenant",
    "external-cached",
    "external-uncached",
    "jwt",
)
# What several workers need (docs/operations.md, "Several workers"); REDIS_URL is the bench's own.
WORKERS_ENV = {"MCP_SESSION_MODE": "stateless", "LEGACY_SSE": "false"}
TENANT_LOOKUP_MS = 40  # what a customer lookup costs in a real deployment: 30-60 ms
USERS, CLIENTS_PER_USER, TOKENS_PER_CLIENT = 4, 2, 4
SERVER_CPU, LOAD_CPU = "1", "0"
WRK_TIMEOUT = "5s"
VALIDATION_METRIC = "mcpref_token_validation_duration_seconds"

# Proofs made per expected request: wrk cannot sign, so each measurement gets a supply made just
# before it (each proof is single use); the expected rate is the cell's last, or this first guess.
DPOP_PROOF_HEADROOM = 2.0
DPOP_FIRST_GUESS_RPS = 2500.0

TARGETS = {
    "internal_vs_none": 0.90,
    "dpop_vs_bearer": 0.85,
    "tenant_vs_internal": 0.90,
    "external_cached_vs_none": 0.85,
    "modern_vs_bare": 0.30,
    "legacy_vs_bare": 0.20,
    "legacy_vs_modern": 0.75,
    "p99_ms_at_64": 250.0,
    "validation_p50_ms": 0.1,
    "rss_growth": 0.10,
}


@dataclass
class Setup:
    """One server set-up; every revision and connection count is measured against it."""

    name: str
    app: str  # "bare" or "mcp"
    mode: str  # none, internal, external
    revisions: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    stack: str = "fast"  # fast: asyncio + httptools (what the project runs); pure: asyncio + h11
    serve_args: tuple[str, ...] = ()  # extra arguments to scripts/bench/serve.py
    workers: int = 0  # > 0: `python -m mcp_server --workers N` on Redis, stateless, nothing pinned
    dpop: bool = False  # DPoP-bound tokens, a fresh proof per request

    @property
    def pinned(self) -> bool:
        return not self.workers


def setups(compare_pure: bool) -> list[Setup]:
    both = (MODERN, LEGACY)
    plan = [
        Setup("bare", "bare", "none", ("bare",)),
        Setup("none", "mcp", "none", both),
        Setup("internal", "mcp", "internal", both),
        Setup("internal-dpop", "mcp", "internal", both, dpop=True),
        Setup("internal-sse", "mcp", "internal", (LEGACY,), {"MCP_JSON_RESPONSES": "never"}),
        Setup("workers-1", "mcp", "internal", both, WORKERS_ENV, workers=1),
        Setup("workers-2", "mcp", "internal", both, WORKERS_ENV, workers=2),
        Setup(
            "internal-tenant",
            "mcp",
            "internal",
            both,
            serve_args=("--tenant-lookup-ms", str(TENANT_LOOKUP_MS)),
        ),
        Setup("external-cached", "mcp", "external", both),
        Setup(
            "external-uncached",
            "mcp",
            "external",
            (MODERN,),
            {"INTROSPECTION_CACHE_TTL": "0", "INTROSPECTION_NEGATIVE_TTL": "0"},
        ),
        Setup("jwt", "mcp", "external", both, {"TOKEN_FORMAT": "jwt"}),
    ]
    if compare_pure:
        plan += [
            Setup("bare", "bare", "none", ("bare",), stack="pure"),
            Setup("none", "mcp", "none", both, stack="pure"),
            Setup("internal", "mcp", "internal", both, stack="pure"),
        ]
    return plan


# --- wrk -----------------------------------------------------------------------------------------
def ensure_wrk() -> str:
    """wrk from Debian, installed on first use (like scripts/ensure-system-deps.sh does)."""
    found = shutil.which("wrk")
    if found:
        return found
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    print("bench: installing wrk (apt-get)...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk"]
    if subprocess.run(install, env=env, check=False, capture_output=True).returncode != 0:
        subprocess.run([*sudo, "apt-get", "update", "-qq"], env=env, check=True)
        subprocess.run(install, env=env, check=True, capture_output=True)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("bench: wrk is not installed and could not be installed")
    return found


def pinned(cpu: str, args: list[str], pin: bool) -> list[str]:
    return ["taskset", "-c", cpu, *args] if pin and shutil.which("taskset") else args


WRK_THREADS = 2


def write_proofs(url: str, tokens: list[str], keys: list[DPoPKey], count: int) -> str:
    """`count` fresh DPoP proofs for tokens used round-robin, one `<token index> <proof>` per line
    (scripts/bench/tools_call.lua reads them: each proof is sent once)."""
    with tempfile.NamedTemporaryFile("w", suffix=".proofs", delete=False) as out:
        for n in range(count):
            index = n % len(tokens)
            out.write(f"{index} {proof_for(keys[index], url, tokens[index])}\n")
    return out.name


def run_wrk(
    url: str,
    revision: str,
    tokens: list[str],
    sessions: list[str],
    connections: int,
    seconds: float,
    pin: bool,
    proofs_path: str | None = None,
) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        result_path = out.name
    env = {
        **os.environ,
        "BENCH_REVISION": revision,
        "BENCH_TOKENS": " ".join(tokens),
        "BENCH_SESSIONS": " ".join(sessions),
        "BENCH_RESULT": result_path,
        "BENCH_PROOFS": proofs_path or "",
        "BENCH_THREADS": str(WRK_THREADS),
    }
    args = [
        "wrk",
        f"-t{WRK_THREADS}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={WRK_TIMEOUT}",
        "-s",
        str(LUA),
        url,
    ]
    try:
        done = subprocess.run(
            pinned(LOAD_CPU, args, pin), env=env, capture_output=True, text=True, timeout=seconds + 60
        )
        if done.returncode != 0:
            raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr[-2000:]}")
        result: dict[str, Any] = json.loads(Path(result_path).read_text())
    finally:
        Path(result_path).unlink(missing_ok=True)
    seconds_run = result["duration_us"] / 1e6
    result["rps"] = result["requests"] / seconds_run if seconds_run else 0.0
    result["errors"] = sum(result[k] for k in result if k.startswith("errors_"))
    if result.get("proofs_short"):
        raise RuntimeError(
            f"wrk ran out of DPoP proofs ({result['proofs_short']} requests went without one): "
            "raise DPOP_PROOF_HEADROOM in scripts/bench/run.py"
        )
    return result


# --- servers ---------------------------------------------------------------------------------------
def rss_kib(process: ServerProcess) -> int | None:
    """Resident size of the server: the process, plus its workers when it supervises some."""
    popen = process._process
    if popen is None:
        return None
    total = None
    for pid in (popen.pid, *_children(popen.pid)):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total = (total or 0) + int(line.split()[1])
        except OSError:
            continue
    return total


def cpu_seconds(process: ServerProcess) -> float | None:
    """CPU time the server has used so far (user + system): the process, plus its live workers.

    Read around each measurement, it gives the server's CPU per request, which other load on the
    machine does not change the way it changes requests per second (it only slows both alike)."""
    popen = process._process
    if popen is None:
        return None
    ticks = None
    for pid in (popen.pid, *_children(popen.pid)):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        ticks = (ticks or 0) + int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return None if ticks is None else ticks / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(child) for child in (task / "children").read_text().split()]
    return found


@dataclass
class Running:
    mcp_url: str
    mcp: ServerProcess
    auth: ServerProcess | None


@contextmanager
def started(
    setup: Setup, workdir: Path, pin: bool, users: dict[str, str], redis_url: str | None = None
) -> Iterator[Running]:
    port = free_port()
    auth_port = free_port() if setup.mode == "external" else None
    env: dict[str, str] = {
        "HOST": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
        "RATE_LIMIT_PER_MINUTE": "10000000",
        "SHOWCASE": "true",  # the benchmark calls the showcase's echo
        "INTROSPECTION_RATE_LIMIT_PER_MINUTE": "10000000",  # external-uncached: one call per request
        "AUTH_MODE": setup.mode,
        "MCP_PORT": str(port),
        "AUTH_USERS": json.dumps(users),
        "INTROSPECTION_CLIENT_ID": "bench-resource-server",
        "INTROSPECTION_CLIENT_SECRET": "bench-secret-0123456789abcdef",
        **setup.env,
    }
    if auth_port is not None:
        env["AUTH_PORT"] = str(auth_port)
    if setup.workers:
        assert redis_url is not None
        env["REDIS_URL"] = redis_url
        env["REDIS_KEY_PREFIX"] = f"bench-{setup.name}:"
    full_env = clean_environ(env)
    loop, http = ("asyncio", "h11") if setup.stack == "pure" else ("asyncio", "httptools")
    serve = [
        PYTHON,
        "-m",
        "scripts.bench.serve",
        setup.app,
        "--port",
        str(port),
        "--loop",
        loop,
        "--http",
        http,
        *setup.serve_args,
    ]
    if setup.workers:  # the real entry point and its supervisor, as an operator runs it
        serve = [PYTHON, "-m", "mcp_server", "--port", str(port), "--workers", str(setup.workers)]
    workdir.mkdir(parents=True, exist_ok=True)
    mcp = ServerProcess(
        "mcp_server",
        pinned(SERVER_CPU, serve, pin and setup.pinned),
        full_env,
        f"http://127.0.0.1:{port}/healthz",
        workdir,
    )
    auth = None
    if auth_port is not None:
        auth = ServerProcess(
            "auth_server",
            pinned(LOAD_CPU, [PYTHON, "-m", "auth_server"], pin),
            full_env,
            f"http://127.0.0.1:{auth_port}/healthz",
            workdir,
        )
    try:
        if auth is not None:
            auth.start()
        mcp.start()
        yield Running(f"http://127.0.0.1:{port}/mcp", mcp, auth)
    finally:
        mcp.stop()
        if auth is not None:
            auth.stop()


@dataclass
class Clients:
    tokens: list[str]
    sessions: list[str]
    keys: list[DPoPKey] = field(default_factory=list)  # DPoP: the key each token is bound to


def prepare_clients(setup: Setup, running: Running, revision: str) -> Clients:
    """Tokens from the real flow (auth modes), sessions for 2025-11-25, each checked once."""
    count = USERS * CLIENTS_PER_USER * TOKENS_PER_CLIENT
    tokens: list[str] = []
    keys: list[DPoPKey] = []
    if setup.mode != "none":
        users = [f"bench-user-{n}" for n in range(1, USERS + 1)]
        minted = mint_tokens(running.mcp_url, users, CLIENTS_PER_USER, TOKENS_PER_CLIENT, dpop=setup.dpop)
        tokens = [m.access_token for m in minted]
        keys = [m.dpop for m in minted if m.dpop is not None]
    sessions: list[str] = []

    def key(index: int) -> DPoPKey | None:
        return keys[index] if keys else None

    with httpx2.Client(timeout=10.0, trust_env=False) as client:
        if revision == LEGACY and not setup.workers:  # stateless: 2025-11-25 requests need no session
            sessions = [
                open_session(client, running.mcp_url, token, key(index))
                for index, token in enumerate(tokens or [None] * count)
            ]
        if setup.app == "mcp":
            for index in range(max(len(tokens), len(sessions), 1)):
                check_tools_call(
                    client,
                    running.mcp_url,
                    revision,
                    tokens[index] if tokens else None,
                    sessions[index] if sessions else None,
                    key(index),
                )
    return Clients(tokens, sessions, keys)


def scrape(mcp_url: str) -> str | None:
    """The server's /metrics text, or None when it has none (the bare ceiling) or cannot answer."""
    try:
        with httpx2.Client(timeout=5.0, trust_env=False) as client:
            response = client.get(mcp_url.removesuffix("/mcp") + "/metrics")
    except httpx2.HTTPError:
        return None
    return response.text if response.status_code == 200 else None


def validation_histogram(metrics: str) -> dict[str, Any] | None:
    """The server's own validation-time histogram, from its /metrics text: the validator
    measured inside the process, under the benchmark's load."""
    buckets: list[tuple[float, float]] = []
    for line in metrics.splitlines():
        if line.startswith(VALIDATION_METRIC + '_bucket{le="'):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float(bound), float(line.rsplit(" ", 1)[1])))
    total = buckets[-1][1] if buckets else 0.0
    if not total:
        return None
    p50_bucket = next(bound for bound, count in buckets if count >= total / 2)
    within = next((count for bound, count in buckets if bound >= 0.0001), total)
    return {
        "validations": int(total),
        "p50_at_most_ms": p50_bucket * 1000,
        "share_within_0_1_ms": within / total,
    }


def tenant_lookups(metrics: str) -> dict[str, Any] | None:
    """The server's own tenant numbers, from its /metrics text: lookups made, their mean time, and
    the share of requests answered from the cache."""
    samples: dict[str, float] = {}
    for line in metrics.splitlines():
        if line.startswith("mcpref_tenant_"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    lookups = samples.get('mcpref_tenant_lookup_duration_seconds_count{outcome="ok"}', 0.0)
    hits = samples.get("mcpref_tenant_cache_hits_total", 0.0)
    if not lookups:
        return None
    seconds = samples.get('mcpref_tenant_lookup_duration_seconds_sum{outcome="ok"}', 0.0)
    return {
        "lookups": int(lookups),
        "mean_lookup_ms": round(seconds / lookups * 1000, 1),
        "requests_from_cache": round(hits / (hits + lookups), 5),
    }


# --- the run -----------------------------------------------------------------------------------------
@dataclass
class Cell:
    """One measurement: a set-up, a revision and a connection count, against a running server."""

    setup: Setup
    running: Running
    revision: str
    connections: int
    clients: Clients
    rounds: list[dict[str, Any]] = field(default_factory=list)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Every set-up is started (and its clients prepared) first; then the cells are measured in
    `args.rounds` interleaved rounds, in a rotating order, and each figure is the median over the
    rounds. Servers that are not being measured sit idle, so background load on a shared machine
    drifts across all cells alike instead of landing on a few: the ratios are what stays true."""
    users = bench_users(USERS)
    in_server: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, contextlib.ExitStack() as stack:
        cells: list[Cell] = []
        runnings: list[tuple[Setup, Running]] = []
        chosen = [s for s in setups(args.compare_pure) if not args.only or s.name in args.only]
        redis_url = None
        if any(setup.workers for setup in chosen):
            redis = start_redis(Path(tmp) / "redis")
            stack.callback(redis.stop)
            redis_url = redis.url
        for setup in chosen:
            workdir = Path(tmp) / f"{setup.name}-{setup.stack}"
            running = stack.enter_context(started(setup, workdir, args.pin, users, redis_url))
            runnings.append((setup, running))
            for revision in setup.revisions:
                clients = prepare_clients(setup, running, revision)
                cells += [Cell(setup, running, revision, connections, clients) for connections in CONNECTIONS]
        # Cells that are compared with each other run close together in every round, so each ratio
        # is taken from neighbours: a set-up's two revisions back to back (the 2025-11-25 /
        # 2026-07-28 target), set-ups in SETUP_ORDER (each next to the one it is compared with), the
        # bare ceiling last, all at one stack and connection count.
        order = {name: index for index, name in enumerate(SETUP_ORDER)}
        cells.sort(
            key=lambda c: (
                c.setup.stack,
                c.connections,
                c.revision == "bare",
                order[c.setup.name],
                c.revision != MODERN,
            )
        )
        print(f"bench: {len(runnings)} servers up, {len(cells)} cells x {args.rounds} rounds", flush=True)
        for number in range(args.rounds):
            shift = number * len(cells) // max(1, args.rounds)
            for cell in cells[shift:] + cells[:shift]:
                pin = args.pin and cell.setup.pinned
                if number == 0 and args.warmup > 0:
                    run_wrk_for(cell, args.warmup, pin)
                result = run_wrk_for(cell, args.duration, pin)
                cell.rounds.append(result)
                latency = result["latency_us"]
                print(
                    f"  round {number + 1} {cell.setup.stack:4} {cell.setup.name:18} {cell.revision:10} "
                    f"c={cell.connections:<3} {result['rps']:8.1f} req/s  "
                    f"p50 {latency['p50'] / 1000:6.2f} ms  p99 {latency['p99'] / 1000:7.2f} ms  "
                    f"cpu {result.get('cpu_us_per_request', 0):6.0f} us/req",
                    flush=True,
                )
                if result["errors"]:
                    raise SystemExit(f"bench: errors in {cell.setup.name} {cell.revision}: {result}")
        rows = [row_of(cell) for cell in cells]
        tenants: dict[str, Any] = {}
        for setup, running in runnings:
            if setup.mode != "none" and setup.stack == "fast" and not setup.workers:  # /metrics: one worker
                metrics = scrape(running.mcp_url)
                histogram = validation_histogram(metrics) if metrics else None
                if histogram is not None:
                    in_server[setup.name] = histogram
                lookups = tenant_lookups(metrics) if metrics else None
                if lookups is not None:
                    tenants[setup.name] = lookups
    return {"rows": rows, "validation_in_server": in_server, "tenant_lookups": tenants, "rounds": args.rounds}


def run_wrk_for(cell: Cell, seconds: float, pin: bool) -> dict[str, Any]:
    proofs_path = None
    if cell.clients.keys:
        expected = cell.rounds[-1]["rps"] if cell.rounds else DPOP_FIRST_GUESS_RPS
        count = int(expected * max(1, round(seconds)) * DPOP_PROOF_HEADROOM) + 500
        proofs_path = write_proofs(cell.running.mcp_url, cell.clients.tokens, cell.clients.keys, count)
    try:
        before = cpu_seconds(cell.running.mcp)
        result = run_wrk(
            cell.running.mcp_url,
            cell.revision,
            cell.clients.tokens,
            cell.clients.sessions,
            cell.connections,
            seconds,
            pin,
            proofs_path,
        )
        after = cpu_seconds(cell.running.mcp)
    finally:
        if proofs_path is not None:
            Path(proofs_path).unlink(missing_ok=True)
    if before is not None and after is not None and result["requests"]:
        result["cpu_us_per_request"] = (after - before) * 1e6 / result["requests"]
    return result


def row_of(cell: Cell) -> dict[str, Any]:
    def median(values: list[float]) -> float:
        return float(statistics.median(values))

    latency = [r["latency_us"] for r in cell.rounds]
    cpu_rounds = [r.get("cpu_us_per_request") for r in cell.rounds]  # None: not read that round
    cpu = [value for value in cpu_rounds if value is not None]
    return {
        "setup": cell.setup.name,
        "stack": cell.setup.stack,
        "revision": cell.revision,
        "connections": cell.connections,
        "rps": round(median([r["rps"] for r in cell.rounds]), 1),
        "p50_ms": median([x["p50"] for x in latency]) / 1000,
        "p90_ms": median([x["p90"] for x in latency]) / 1000,
        "p99_ms": median([x["p99"] for x in latency]) / 1000,
        "max_ms": max(x["max"] for x in latency) / 1000,
        "requests": sum(r["requests"] for r in cell.rounds),
        "errors": sum(r["errors"] for r in cell.rounds),
        "rss_mib": round((rss_kib(cell.running.mcp) or 0) / 1024, 1),
        "cpu_us": round(median(cpu), 1) if cpu else None,
        "rounds_cpu_us": [None if value is None else round(value, 1) for value in cpu_rounds],
        "rounds_rps": [round(r["rps"], 1) for r in cell.rounds],
    }


def find(
    rows: list[dict[str, Any]], setup: str, revision: str, connections: int, stack: str = "fast"
) -> dict[str, Any] | None:
    for row in rows:
        if (row["setup"], row["revision"], row["connections"], row["stack"]) == (
            setup,
            revision,
            connections,
            stack,
        ):
            return row
    return None


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every ratio the targets are stated in, for each revision, connection count and stack."""
    out: list[dict[str, Any]] = []

    def add(
        name: str, target: float, num: dict[str, Any] | None, den: dict[str, Any] | None, **labels: Any
    ) -> None:
        if num is None or den is None or not den["rps"]:
            return
        # Paired: the ratio in each round (the two cells ran minutes apart at most), then the median.
        pairs = [a / b for a, b in zip(num["rounds_rps"], den["rounds_rps"], strict=True) if b]
        value = statistics.median(pairs) if pairs else num["rps"] / den["rps"]
        out.append(
            {"ratio": name, **labels, "value": round(value, 3), "target": target, "met": value >= target}
        )

    def add_by_cpu(name: str, num: dict[str, Any] | None, den: dict[str, Any] | None, **labels: Any) -> None:
        """The same comparison read from the server's CPU per request (den's over num's: higher is
        better, like req/s), which load from elsewhere on the machine does not skew."""
        if num is None or den is None:
            return
        rounds = zip(num["rounds_cpu_us"], den["rounds_cpu_us"], strict=True)
        pairs = [b / a for a, b in rounds if a and b is not None]
        if pairs:
            value = statistics.median(pairs)
            out.append({"ratio": name, **labels, "value": round(value, 3), "target": 0.0, "met": True})

    for stack in ("fast", "pure"):
        for connections in CONNECTIONS:
            bare = find(rows, "bare", "bare", connections, stack)
            for revision in (MODERN, LEGACY):
                none = find(rows, "none", revision, connections, stack)
                labels = {"revision": revision, "connections": connections, "stack": stack}
                add(
                    "internal / none",
                    TARGETS["internal_vs_none"],
                    find(rows, "internal", revision, connections, stack),
                    none,
                    **labels,
                )
                add(
                    "internal-dpop / internal (DPoP / Bearer)",
                    TARGETS["dpop_vs_bearer"],
                    find(rows, "internal-dpop", revision, connections, stack),
                    find(rows, "internal", revision, connections, stack),
                    **labels,
                )
                add_by_cpu(
                    "internal-dpop / internal (DPoP / Bearer), by server CPU per request",
                    find(rows, "internal-dpop", revision, connections, stack),
                    find(rows, "internal", revision, connections, stack),
                    **labels,
                )
                add(
                    "internal-tenant / internal",
                    TARGETS["tenant_vs_internal"],
                    find(rows, "internal-tenant", revision, connections, stack),
                    find(rows, "internal", revision, connections, stack),
                    **labels,
                )
                add(
                    "external-cached / none",
                    TARGETS["external_cached_vs_none"],
                    find(rows, "external-cached", revision, connections, stack),
                    none,
                    **labels,
                )
                for other in ("external-uncached", "jwt"):
                    add(
                        f"{other} / none",
                        0.0,
                        find(rows, other, revision, connections, stack),
                        none,
                        **labels,
                    )
                target = TARGETS["modern_vs_bare"] if revision == MODERN else TARGETS["legacy_vs_bare"]
                for setup in ("internal", "external-cached", "jwt"):
                    add(
                        f"{setup} / bare",
                        target,
                        find(rows, setup, revision, connections, stack),
                        bare,
                        **labels,
                    )
                add("none / bare", 0.0, none, bare, **labels)
            # A 2025-11-25 call against a 2026-07-28 one on the same server, and before the JSON
            # answers (internal-sse: every 2025-11-25 request an SSE stream) against the same.
            both = {"revision": f"{LEGACY} / {MODERN}", "connections": connections, "stack": stack}
            for setup in ("none", "internal", "external-cached", "jwt"):
                add(
                    f"{setup}: 2025-11-25 / 2026-07-28",
                    TARGETS["legacy_vs_modern"],
                    find(rows, setup, LEGACY, connections, stack),
                    find(rows, setup, MODERN, connections, stack),
                    **both,
                )
                add_by_cpu(
                    f"{setup}: 2025-11-25 / 2026-07-28, by server CPU per request",
                    find(rows, setup, LEGACY, connections, stack),
                    find(rows, setup, MODERN, connections, stack),
                    **both,
                )
            for revision in (MODERN, LEGACY):
                add(
                    "workers-2 / workers-1 (unpinned)",
                    0.0,
                    find(rows, "workers-2", revision, connections, stack),
                    find(rows, "workers-1", revision, connections, stack),
                    revision=revision,
                    connections=connections,
                    stack=stack,
                )
                add_by_cpu(  # what a second worker adds to each request (shared metrics files, Redis)
                    "workers-2 / workers-1, by server CPU per request",
                    find(rows, "workers-2", revision, connections, stack),
                    find(rows, "workers-1", revision, connections, stack),
                    revision=revision,
                    connections=connections,
                    stack=stack,
                )
            add(
                "internal-sse 2025-11-25 / internal 2026-07-28 (before)",
                0.0,
                find(rows, "internal-sse", LEGACY, connections, stack),
                find(rows, "internal", MODERN, connections, stack),
                **both,
            )
            add_by_cpu(
                "internal-sse 2025-11-25 / internal 2026-07-28 (before), by server CPU per request",
                find(rows, "internal-sse", LEGACY, connections, stack),
                find(rows, "internal", MODERN, connections, stack),
                **both,
            )
    return out


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def version(module: str) -> str | None:
        try:
            from importlib.metadata import version as v

            return v(module)
        except Exception:
            return None

    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "loadavg_at_start": os.getloadavg(),
        "uvicorn": version("uvicorn"),
        "uvloop": version("uvloop"),
        "httptools": version("httptools"),
        "mcp": version("mcp"),
        "starlette": version("starlette"),
        "wrk": subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.splitlines()[:1],
    }


def markdown(report: dict[str, Any]) -> str:
    box = report["machine"]
    lines = [
        f"Machine: {box['nproc']} cores, {box['cpu']}, Python {box['python']}; "
        f"uvicorn {box['uvicorn']} on the asyncio loop, httptools "
        f"{box['httptools']}; load average at start {box['loadavg_at_start']}; "
        f"{report['rounds']} interleaved rounds of {report['duration']} s per cell, medians.",
        "",
        "| stack | set-up | revision | conns | req/s | p50 ms | p99 ms | server CPU us/req | RSS MiB |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["rows"]:
        cpu = "-" if row.get("cpu_us") is None else f"{row['cpu_us']:.0f}"
        lines.append(
            f"| {row['stack']} | {row['setup']} | {row['revision']} | {row['connections']} | "
            f"{row['rps']:.0f} | "
            f"{row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {cpu} | {row['rss_mib']} |"
        )
    lines += [
        "",
        "| ratio | stack | revision | conns | value | target | met |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for ratio in report["ratios"]:
        target = f"{ratio['target']:.2f}" if ratio["target"] else "-"
        met = ("yes" if ratio["met"] else "**no**") if ratio["target"] else "-"
        lines.append(
            f"| {ratio['ratio']} | {ratio['stack']} | {ratio['revision']} | {ratio['connections']} | "
            f"{ratio['value']:.3f} | {target} | {met} |"
        )
    lines += ["", "| check | value | target | met |", "|---|---:|---:|---|"]
    for check in report["checks"]:
        lines.append(
            f"| {check['check']} | {check['value']} | {check['target']} | "
            f"{'yes' if check['met'] else '**no**'} |"
        )
    if report.get("tenant_lookups"):
        lines += [
            "",
            "| set-up | tenant lookups | mean lookup ms | requests from the cache |",
            "|---|---:|---:|---:|",
        ]
        for name, stats in report["tenant_lookups"].items():
            cached = f"{stats['requests_from_cache']:.5f}"
            lines.append(f"| {name} | {stats['lookups']} | {stats['mean_lookup_ms']} | {cached} |")
    return "\n".join(lines) + "\n"


def checks(
    rows: list[dict[str, Any]], validation: dict[str, Any] | None, in_server: dict[str, Any]
) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        if row["connections"] == 64 and row["stack"] == "fast":
            out.append(
                {
                    "check": f"p99 at 64 conns, {row['setup']} {row['revision']} (ms)",
                    "value": row["p99_ms"],
                    "target": f"< {TARGETS['p99_ms_at_64']:.0f}",
                    "met": row["p99_ms"] < TARGETS["p99_ms_at_64"],
                }
            )
    for name, stats in (validation or {}).get("results", {}).items():
        out.append(
            {
                "check": f"validation p50, {name} (ms)",
                "value": round(stats["p50_us"] / 1000, 4),
                "target": f"< {TARGETS['validation_p50_ms']}",
                "met": stats["p50_us"] / 1000 < TARGETS["validation_p50_ms"],
            }
        )
    for name, histogram in in_server.items():
        if name == "external-uncached":
            continue  # an HTTP round trip to the AS per request by design: reported, no target
        out.append(
            {
                "check": f"in-server validation p50, {name}, {histogram['validations']} calls (ms, bucket)",
                "value": f"<= {histogram['p50_at_most_ms']:g}",
                "target": f"< {TARGETS['validation_p50_ms']}",
                "met": histogram["share_within_0_1_ms"] >= 0.5,
            }
        )
    return out


def run_tracing_bench(pin: bool) -> dict[str, Any]:
    """scripts/bench/tracing.py: tools/call with tracing off and on against no OpenTelemetry."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        path = out.name
    try:
        args = [PYTHON, "-m", "scripts.bench.tracing", "--json", path]
        if pin:
            args += ["--pin", SERVER_CPU]
        subprocess.run(args, cwd=REPO_ROOT, check=True, timeout=1800)
        result: dict[str, Any] = json.loads(Path(path).read_text())
        return result
    finally:
        Path(path).unlink(missing_ok=True)


def run_validation_bench(pin: bool) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        path = out.name
    try:
        args = [PYTHON, "-m", "scripts.bench.validation", "--json", path]
        subprocess.run(pinned(SERVER_CPU, args, pin), cwd=REPO_ROOT, check=True, timeout=300)
        result: dict[str, Any] = json.loads(Path(path).read_text())
        return result
    finally:
        Path(path).unlink(missing_ok=True)


# --- soak ---------------------------------------------------------------------------------------------
SOAK_INTERVAL = 30.0


def soak(args: argparse.Namespace) -> int:
    """A fixed client set (32 tokens, 32 sessions; 32 connections per revision) for `args.soak`
    seconds against AUTH_MODE=internal, resident size sampled after every interval."""
    users = bench_users(USERS)
    setup = Setup("internal", "mcp", "internal", (MODERN, LEGACY))
    samples: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp,
        started(setup, Path(tmp), args.pin, users) as running,
    ):
        modern = prepare_clients(setup, running, MODERN)
        legacy = prepare_clients(setup, running, LEGACY)
        samples.append({"t": 0, "rss_mib": round((rss_kib(running.mcp) or 0) / 1024, 1)})
        started_at = time.monotonic()
        while time.monotonic() - started_at < args.soak - 1:
            interval = min(SOAK_INTERVAL, args.soak - (time.monotonic() - started_at))
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(2) as pool:
                jobs = [
                    pool.submit(run_wrk, running.mcp_url, MODERN, modern.tokens, [], 32, interval, args.pin),
                    pool.submit(
                        run_wrk,
                        running.mcp_url,
                        LEGACY,
                        legacy.tokens,
                        legacy.sessions,
                        32,
                        interval,
                        args.pin,
                    ),
                ]
                batch = [job.result() for job in jobs]
            results += batch
            errors = sum(r["errors"] for r in batch)
            sample = {
                "t": round(time.monotonic() - started_at),
                "rss_mib": round((rss_kib(running.mcp) or 0) / 1024, 1),
                "rps": round(sum(r["rps"] for r in batch), 1),
                "errors": errors,
            }
            samples.append(sample)
            print(
                f"  soak t={sample['t']:4}s rss {sample['rss_mib']} MiB  {sample['rps']} req/s  "
                f"errors {errors}",
                flush=True,
            )
    warm = samples[1]["rss_mib"] if len(samples) > 1 else samples[0]["rss_mib"]
    peak = max(s["rss_mib"] for s in samples[1:]) if len(samples) > 1 else warm
    growth = (peak - warm) / warm if warm else 0.0
    total_errors = sum(r["errors"] for r in results)
    report = {
        "machine": machine(),
        "seconds": args.soak,
        "samples": samples,
        "rss_after_first_interval_mib": warm,
        "rss_peak_mib": peak,
        "growth": round(growth, 4),
        "target": TARGETS["rss_growth"],
        "met": growth <= TARGETS["rss_growth"] and total_errors == 0,
        "errors": total_errors,
        "requests": sum(r["requests"] for r in results),
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "soak.json").write_text(json.dumps(report, indent=2))
    table = ["| t (s) | RSS MiB | req/s | errors |", "|---:|---:|---:|---:|"]
    table += [
        f"| {s['t']} | {s['rss_mib']} | {s.get('rps', '-')} | {s.get('errors', '-')} |" for s in samples
    ]
    summary = (
        f"Soak: {args.soak} s, AUTH_MODE=internal, 32 connections on 2026-07-28 + 32 on 2025-11-25 "
        f"(32 tokens, 32 sessions, fixed). RSS after the first interval {warm} MiB, peak {peak} MiB: "
        f"growth {growth:.1%} (target <= {TARGETS['rss_growth']:.0%}); {report['requests']} requests, "
        f"{total_errors} errors: {'met' if report['met'] else 'NOT met'}.\n"
    )
    (RESULTS_DIR / "soak.md").write_text(summary + "\n" + "\n".join(table) + "\n")
    print(summary)
    return 0 if report["met"] else 1


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/bench/run.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per cell and round (default 3)")
    parser.add_argument(
        "--rounds", type=int, default=5, help="interleaved rounds, medians reported (default 5)"
    )
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="seconds of unmeasured load first (default 2)"
    )
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin server/load to CPUs")
    parser.add_argument(
        "--no-compare-pure", dest="compare_pure", action="store_false", help="skip the h11/asyncio comparison"
    )
    parser.add_argument("--only", nargs="+", metavar="SETUP", help="measure only these set-ups (iteration)")
    parser.add_argument(
        "--skip-micro", action="store_true", help="skip the validator and tracing micro-benchmarks"
    )
    parser.add_argument(
        "--soak", type=float, default=0, help="run the memory soak for this many seconds instead"
    )
    args = parser.parse_args(argv)
    ensure_wrk()
    if args.soak:
        return soak(args)
    load = os.getloadavg()[0]
    if load > 0.5:
        print(
            f"bench: load average is {load:.2f}; other work on this machine will skew absolute numbers",
            flush=True,
        )
    report: dict[str, Any] = {"machine": machine(), "duration": args.duration}
    print("bench: validator micro-benchmark", flush=True)
    validation = None if args.skip_micro else run_validation_bench(args.pin)
    print("bench: tracing micro-benchmark (off and on vs no OpenTelemetry)", flush=True)
    tracing = None if args.skip_micro else run_tracing_bench(args.pin)
    print("bench: wrk, tools/call echo", flush=True)
    report.update(measure(args))
    report["validation"] = validation
    report["ratios"] = ratios(report["rows"])
    report["checks"] = checks(report["rows"], validation, report["validation_in_server"])
    report["tracing"] = tracing
    if tracing is not None:
        report["checks"].append(tracing["check"])
        for variant, label in (
            ("sdk-default", "the MCP SDK's no-op middleware left in"),
            ("on", "tracing on, all sampled"),
            ("on-10%", "tracing on, 10% sampled"),
        ):
            report["checks"].append(
                {
                    "check": f"{label} / no OpenTelemetry (in-process tools/call)",
                    "value": tracing["variants"][variant]["throughput_vs_no_otel"],
                    "target": "(reported)",
                    "met": True,
                }
            )
    report["targets"] = TARGETS
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "latest.json").write_text(json.dumps(report, indent=2))
    table = markdown(report)
    (RESULTS_DIR / "latest.md").write_text(table)
    print()
    print(table)
    print(f"bench: wrote {RESULTS_DIR / 'latest.json'} and {RESULTS_DIR / 'latest.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
