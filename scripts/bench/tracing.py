"""What tracing costs per request: off (no OTEL_* variable), and on (exporting over OTLP/HTTP).

The app is `create_app()` exactly as `python -m mcp_server` builds it (AUTH_MODE=internal, a
token issued by the authorization server's own TokenService), driven in-process through ASGI with
a 2026-07-28 `tools/call` of `echo`: the whole server-side path, no socket and no client in the
way, so the differences are the server's own. Each variant is measured against `no-otel`, the
same app built with the benchmark forcing every OpenTelemetry hook out (our instrumentation, and
the MCP SDK's own `OpenTelemetryMiddleware`), in chunks of 25 requests alternating within one
process, so whatever else loads the machine lands on all of them alike:

- `off`: no OTEL_* variable: what every deployment that does not ask for traces runs. Target:
  indistinguishable from `no-otel` (>= 0.97x, the noise of a shared machine).
- `sdk-default`: the SDK's middleware left in (a no-op span and a `_meta` extraction per
  message, with no provider): what every request paid before the app learnt to remove it when
  tracing is off (mcp_server/sdk_access.py `drop_sdk_tracing`). Reported.
- `on`: OTEL_EXPORTER_OTLP_ENDPOINT set, every request sampled (the SDK's default sampler), the
  spans exported over OTLP/HTTP by the SDK's batch processor (its thread shares this process's
  GIL, as in production) to a local receiver in another process that discards them. Reported.
- `on-10%`: the same with `OTEL_TRACES_SAMPLER=parentbased_traceidratio`, `_ARG=0.1`. Reported.

`python -m scripts.bench.tracing [--json FILE] [--requests N] [--rounds R]`; run by `make bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from starlette.applications import Starlette
from starlette.types import Message

from scripts.bench.validation import BODY, PORT, SCOPES, TOOLS_CALL_HEADERS, settings
from shared.runtime import freeze_startup_heap
from shared.storage.factory import open_store

REPO_ROOT = Path(__file__).resolve().parents[2]
TARGET_OFF = 0.97
CHUNK = 25  # requests timed together before switching to the other app
SINK_LIFETIME = 900.0  # seconds: the receiver stops by itself even if its parent is killed


# --- the child: one variant against no-otel, in one process -----------------------------------------


def build(store: Any, variant: str) -> Starlette:
    """create_app() as shipped (`off`, `on`), with every OpenTelemetry hook removed (`no-otel`),
    or with only the MCP SDK's own middleware, as every request ran before tracing was added
    (`sdk-default`)."""
    import mcp_server.app as app_module
    import mcp_server.server as server_module

    config = settings(auth_mode="internal")
    if variant in ("off", "on", "on-10%"):
        return app_module.create_app(config, store=store)
    saved = (app_module.active_tracer, server_module.active_tracer, server_module.drop_sdk_tracing)
    app_module.active_tracer = server_module.active_tracer = lambda: None
    if variant == "sdk-default":
        server_module.drop_sdk_tracing = lambda server: None
    try:
        return app_module.create_app(config, store=store)
    finally:
        app_module.active_tracer, server_module.active_tracer, server_module.drop_sdk_tracing = saved


async def call(app: Starlette, token: bytes) -> bytes:
    """One POST /mcp through the ASGI app; the response body."""
    done = asyncio.Event()
    sent = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": BODY, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                done.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/mcp",
        "raw_path": b"/mcp",
        "query_string": b"",
        "headers": [*TOOLS_CALL_HEADERS, (b"authorization", b"Bearer " + token)],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", PORT),
        "state": {},
    }
    await app(scope, receive, send)
    body = b"".join(chunks)
    if status != 200:
        raise RuntimeError(f"tools/call answered {status}: {body[:300]!r}")
    return body


async def child(variant: str, requests: int, rounds: int) -> dict[str, Any]:
    from auth_server.signing_keys import SigningKeys
    from auth_server.tokens import TokenService

    config = settings(auth_mode="internal")
    store = open_store(config)
    issued = await TokenService.from_settings(config, store, SigningKeys.from_settings(config, store)).issue(
        client_id="bench-client",
        subject="bench-user",
        scopes=SCOPES,
        resource=f"http://127.0.0.1:{PORT}/mcp",
        grant_id="g1",
    )
    token = issued.access_token.encode()
    names = [variant, "no-otel"] + (["sdk-default"] if variant == "off" else [])
    apps = {name: build(store, name) for name in names}
    freeze_startup_heap()  # as `python -m mcp_server` does once the app is built
    from shared.tracing import active_tracer

    if (active_tracer() is not None) != variant.startswith("on"):
        raise RuntimeError(f"variant {variant}: tracing is {'on' if active_tracer() else 'off'}")
    per_request: dict[str, list[float]] = {name: [] for name in apps}
    lifespans = [app.router.lifespan_context(app) for app in apps.values()]
    for lifespan in lifespans:
        await lifespan.__aenter__()
    try:
        for app in apps.values():
            assert b"hello" in await call(app, token)
            for _ in range(min(2000, requests)):  # warm-up
                await call(app, token)
        # Interleaved in small chunks (the order rotating), so whatever else runs on the machine
        # lands on every app alike; each round's figure is its total time over its requests.
        for _ in range(rounds):
            spent = dict.fromkeys(names, 0.0)
            for chunk in range(requests // CHUNK):
                turn = chunk % len(names)  # each app takes each position in turn
                for name in names[turn:] + names[:turn]:
                    start = time.perf_counter()
                    for _ in range(CHUNK):
                        await call(apps[name], token)
                    spent[name] += time.perf_counter() - start
            for name in names:
                per_request[name].append(spent[name] / (requests // CHUNK * CHUNK) * 1e6)
    finally:
        for lifespan in reversed(lifespans):
            await lifespan.__aexit__(None, None, None)
    return {"variant": variant, "requests": requests, "rounds": rounds, "per_request_us": per_request}


# --- the OTLP receiver that discards ----------------------------------------------------------------


class _Discard(BaseHTTPRequestHandler):
    received = 0

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        self.rfile.read(length)
        type(self).received += 1
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def sink(port_file: str) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Discard)
    Path(port_file).write_text(str(server.server_address[1]))
    threading.Timer(SINK_LIFETIME, server.shutdown).start()
    server.serve_forever()


@contextmanager
def running_sink() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as folder:
        port_file = Path(folder) / "port"
        process = subprocess.Popen(
            [sys.executable, "-m", "scripts.bench.tracing", "--sink", str(port_file)], cwd=REPO_ROOT
        )
        try:
            deadline = time.monotonic() + 10
            while not port_file.exists() or not port_file.read_text():
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the OTLP sink did not start")
                time.sleep(0.05)
            yield f"http://127.0.0.1:{port_file.read_text()}"
        finally:
            process.terminate()
            process.wait(timeout=10)


# --- the parent ---------------------------------------------------------------------------------------


def run_variant(
    variant: str, requests: int, rounds: int, env: dict[str, str], pin: list[str]
) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        path = out.name
    try:
        args = [sys.executable, "-m", "scripts.bench.tracing", "--child", variant, "--json", path]
        args += ["--requests", str(requests), "--rounds", str(rounds)]
        clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        subprocess.run([*pin, *args], cwd=REPO_ROOT, env={**clean, **env}, check=True, timeout=900)
        result: dict[str, Any] = json.loads(Path(path).read_text())
        return result
    finally:
        Path(path).unlink(missing_ok=True)


def measure(requests: int, rounds: int, pin: list[str]) -> dict[str, Any]:
    report: dict[str, Any] = {"requests": requests, "rounds": rounds, "variants": {}}
    off = run_variant("off", requests, rounds, {}, pin)
    with running_sink() as endpoint:
        on = run_variant("on", requests, rounds, {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}, pin)
        tenth = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.1",
        }
        sampled = run_variant("on-10%", requests, rounds, tenth, pin)
    for result in (off, on, sampled):
        times = result["per_request_us"]
        for variant in times:
            if variant == "no-otel":
                continue
            ratios = [base / mine for base, mine in zip(times["no-otel"], times[variant], strict=True)]
            report["variants"][variant] = {
                "us_per_request": round(statistics.median(times[variant]), 1),
                "no_otel_us_per_request": round(statistics.median(times["no-otel"]), 1),
                "throughput_vs_no_otel": round(statistics.median(ratios), 3),
                "rounds_us": [round(t, 1) for t in times[variant]],
                "no_otel_rounds_us": [round(t, 1) for t in times["no-otel"]],
            }
    off_ratio = report["variants"]["off"]["throughput_vs_no_otel"]
    report["check"] = {
        "check": "tracing off / no OpenTelemetry at all (in-process tools/call)",
        "value": off_ratio,
        "target": f">= {TARGET_OFF}",
        "met": off_ratio >= TARGET_OFF,
    }
    return report


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench.tracing", description=__doc__)
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--requests", type=int, default=2000, help="requests per batch (default 2000)")
    parser.add_argument(
        "--rounds", type=int, default=7, help="alternating rounds, medians reported (default 7)"
    )
    parser.add_argument("--pin", default="", help="run the measured processes under `taskset -c PIN`")
    parser.add_argument("--child", choices=["off", "on", "on-10%"], help=argparse.SUPPRESS)
    parser.add_argument("--sink", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sink:
        sink(args.sink)
        return 0
    if args.child:
        result = asyncio.run(child(args.child, args.requests, args.rounds))
        if args.json:
            Path(args.json).write_text(json.dumps(result))
        return 0
    pin = ["taskset", "-c", args.pin] if args.pin else []
    report = measure(args.requests, args.rounds, pin)
    print("tools/call in-process, us per request (median of rounds), throughput vs no OpenTelemetry:")
    for variant, stats in report["variants"].items():
        print(
            f"  {variant:12} {stats['us_per_request']:8.1f} us"
            f"   no-otel {stats['no_otel_us_per_request']:8.1f} us   {stats['throughput_vs_no_otel']:.3f}x"
        )
    check = report["check"]
    print(f"  {check['check']}: {check['value']} (target {check['target']}, met: {check['met']})")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
