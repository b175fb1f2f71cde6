"""`make loadtest`: many concurrent authenticated clients, in both auth modes, zero errors allowed.

For AUTH_MODE=internal and AUTH_MODE=external in turn, this starts the real processes
(`python -m mcp_server`, plus `python -m auth_server` for external) on free 127.0.0.1 ports, mints
access tokens through the real OAuth flow (4 users x 2 clients x 2 tokens: discovery, dynamic
registration, PKCE, login and consent pages, code exchange), then runs CLIENTS virtual clients at
once, each with its own connection and one of the tokens. Even-numbered clients speak 2026-07-28
(stateless), odd-numbered ones 2025-11-25 (initialize, then their session, then DELETE). Each does
CALLS tools/call requests: `echo` with a message unique to the client and call (the reply must
carry it back: no cross-talk) and every fifth call `whoami` (the reply must name the token's own
user: no principal mix-up under load).

Prints, per mode, the calls, errors, throughput and the latency p50/p90/p99/max of the tool calls,
and writes bench-results/loadtest.json. Exits non-zero on any error, or when a mode does not
finish within --timeout seconds; the servers are always stopped.

    python scripts/loadtest.py [--clients 200] [--calls 20] [--modes internal external]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx2

from scripts.bench.common import (
    LEGACY,
    MODERN,
    Minted,
    bench_users,
    echo_text,
    headers_for,
    initialize_body,
    mint_tokens,
    result_of,
)
from tests.e2e.servers import REPO_ROOT, build_deployment

USERS, CLIENTS_PER_USER, TOKENS_PER_CLIENT = 4, 2, 2


@dataclass
class Outcome:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    calls: int = 0


def call_body(revision: str, tool: str, arguments: dict[str, Any], request_id: int) -> dict[str, Any]:
    params: dict[str, Any] = {"name": tool, "arguments": arguments}
    if revision == MODERN:
        params["_meta"] = {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "loadtest", "version": "1"},
        }
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


async def virtual_client(
    index: int, mcp_url: str, minted: Minted, calls: int, start: asyncio.Event, ready: Ready, outcome: Outcome
) -> None:
    try:
        await _virtual_client(index, mcp_url, minted, calls, start, ready, outcome)
    except Exception as exc:  # a client's failure is a counted error, not the end of the run
        outcome.errors.append(f"client {index}: {type(exc).__name__}: {exc}")
    finally:
        if not start.is_set() and not ready.all.is_set():
            ready.one()  # failed during set-up: do not hold the others back


async def _virtual_client(
    index: int, mcp_url: str, minted: Minted, calls: int, start: asyncio.Event, ready: Ready, outcome: Outcome
) -> None:
    revision = MODERN if index % 2 == 0 else LEGACY
    token = minted.access_token
    async with httpx2.AsyncClient(timeout=30.0, trust_env=False) as http:
        session: str | None = None
        if revision == LEGACY:
            opened = await http.post(mcp_url, json=initialize_body(), headers=headers_for(LEGACY, token))
            if opened.status_code != 200:
                outcome.errors.append(
                    f"client {index}: initialize -> {opened.status_code} {opened.text[:200]}"
                )
                return
            session = opened.headers["mcp-session-id"]
            note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
            acked = await http.post(mcp_url, json=note, headers=headers_for(LEGACY, token, session))
            if acked.status_code != 202:
                outcome.errors.append(f"client {index}: initialized -> {acked.status_code}")
                return
        ready.one()
        await start.wait()
        for n in range(calls):
            whoami = n % 5 == 4
            tool = "whoami" if whoami else "echo"
            message = f"client-{index}-call-{n}"
            body = call_body(revision, tool, {} if whoami else {"message": message}, n + 1)
            headers = headers_for(revision, token, session)
            if revision == MODERN:
                headers["mcp-name"] = tool
            began = time.perf_counter()
            try:
                response = await http.post(mcp_url, json=body, headers=headers)
            except httpx2.HTTPError as exc:
                outcome.errors.append(f"client {index} call {n}: {type(exc).__name__}: {exc}")
                continue
            outcome.latencies.append(time.perf_counter() - began)
            outcome.calls += 1
            reply = result_of(response) if response.status_code == 200 else None
            if whoami:
                structured = (reply or {}).get("result", {}).get("structuredContent") or {}
                ok = (
                    structured.get("subject") == minted.user
                    and structured.get("client_id") == minted.client_id
                )
            else:
                ok = echo_text(reply) == message
            if not ok:
                what = f"client {index} call {n} ({revision} {tool})"
                outcome.errors.append(f"{what}: {response.status_code} {response.text[:200]}")
        if session is not None:
            closed = await http.delete(mcp_url, headers=headers_for(LEGACY, token, session))
            if closed.status_code not in (200, 202, 204):
                outcome.errors.append(f"client {index}: DELETE session -> {closed.status_code}")


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * fraction))]


async def drive(mcp_url: str, tokens: list[Minted], clients: int, calls: int) -> tuple[Outcome, float]:
    """Every client connects (and opens its 2025-11-25 session) first; then all start at once."""
    outcome = Outcome()
    start = asyncio.Event()
    ready = Ready(clients)
    tasks = [
        asyncio.create_task(virtual_client(i, mcp_url, tokens[i % len(tokens)], calls, start, ready, outcome))
        for i in range(clients)
    ]
    await ready.all.wait()
    began = time.perf_counter()
    start.set()
    await asyncio.gather(*tasks)
    return outcome, time.perf_counter() - began


class Ready:
    """Counts clients that are set up (or gave up); `all` is set when none is left to wait for."""

    def __init__(self, expected: int) -> None:
        self.left = expected
        self.all = asyncio.Event()
        if expected == 0:
            self.all.set()

    def one(self) -> None:
        self.left -= 1
        if self.left <= 0:
            self.all.set()


def run_mode(mode: str, clients: int, calls: int, timeout: float) -> dict[str, Any]:
    users = bench_users(USERS)
    env = {
        "AUTH_USERS": json.dumps(users),
        "LOG_LEVEL": "WARNING",
        "RATE_LIMIT_PER_MINUTE": "10000000",
        "INTROSPECTION_RATE_LIMIT_PER_MINUTE": "10000000",
    }
    with tempfile.TemporaryDirectory(prefix=f"loadtest-{mode}-") as tmp:
        deployment = build_deployment(mode, "memory", Path(tmp), env=env)  # type: ignore[arg-type]
        deployment.start()
        try:
            tokens = mint_tokens(deployment.mcp_url, sorted(users), CLIENTS_PER_USER, TOKENS_PER_CLIENT)
            try:
                outcome, seconds = asyncio.run(
                    asyncio.wait_for(drive(deployment.mcp_url, tokens, clients, calls), timeout)
                )
            except TimeoutError:
                raise SystemExit(f"loadtest: {mode} did not finish within {timeout:.0f} s") from None
        except BaseException:
            print(deployment.logs()[-3000:], file=sys.stderr)
            raise
        finally:
            deployment.stop()
    latencies = sorted(outcome.latencies)
    return {
        "mode": mode,
        "clients": clients,
        "calls_per_client": calls,
        "tokens": len(tokens),
        "calls": outcome.calls,
        "errors": len(outcome.errors),
        "first_errors": outcome.errors[:10],
        "seconds": round(seconds, 2),
        "calls_per_second": round(outcome.calls / seconds, 1) if seconds else 0.0,
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "p90_ms": round(percentile(latencies, 0.90) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "max_ms": round((latencies[-1] if latencies else 0.0) * 1000, 2),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 2) if latencies else 0.0,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="scripts/loadtest.py", description=__doc__)
    parser.add_argument("--clients", type=int, default=200, help="concurrent virtual clients (default 200)")
    parser.add_argument("--calls", type=int, default=20, help="tool calls per client (default 20)")
    parser.add_argument(
        "--modes", nargs="+", default=["internal", "external"], choices=["internal", "external"]
    )
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds allowed per mode (default 180)")
    args = parser.parse_args(argv)
    results = []
    for mode in args.modes:
        print(f"loadtest: AUTH_MODE={mode}, {args.clients} clients x {args.calls} tool calls", flush=True)
        result = run_mode(mode, args.clients, args.calls, args.timeout)
        results.append(result)
        print(
            f"  {result['calls']} calls in {result['seconds']} s ({result['calls_per_second']} calls/s), "
            f"{result['errors']} errors; latency p50 {result['p50_ms']} ms, p90 {result['p90_ms']} ms, "
            f"p99 {result['p99_ms']} ms, max {result['max_ms']} ms",
            flush=True,
        )
        for error in result["first_errors"]:
            print(f"    error: {error}", flush=True)
    out = REPO_ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "loadtest.json").write_text(json.dumps(results, indent=2))
    failed = [r for r in results if r["errors"] or r["calls"] != args.clients * args.calls]
    if failed:
        print(f"loadtest: FAILED ({', '.join(r['mode'] for r in failed)})", flush=True)
        return 1
    print("loadtest: passed, zero errors", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
