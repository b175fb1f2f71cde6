"""`python -m scripts.bench.profile SETUP REVISION`: where a tools/call request's time goes.

Starts one benchmark set-up (`none`, `internal`, `external-cached`, `external-uncached`, `jwt`), drives
it with wrk (64 connections) and samples the server with py-spy (`--gil`: only the thread that
holds the interpreter, i.e. CPU spent in Python). Each sample is charged to the owner of its
deepest frame that is the project's code ("ours"), the MCP SDK, Starlette or uvicorn: the
pydantic, anyio, json and standard-library work below such a frame is charged to whoever called
it (so what the SDK drives counts as SDK, and the validator's work as ours).

Writes bench-results/profile-SETUP-REVISION.txt (py-spy's collapsed stacks, for flame graphs)
and .md (owner shares, the heaviest frames inclusive and self); prints the .md.
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from scripts.bench.common import LEGACY, MODERN, bench_users
from scripts.bench.run import (
    DPOP_FIRST_GUESS_RPS,
    DPOP_PROOF_HEADROOM,
    RESULTS_DIR,
    USERS,
    Setup,
    ensure_wrk,
    prepare_clients,
    run_wrk,
    setups,
    started,
    write_proofs,
)

_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>.*):(?P<line>\d+)\)$")
OWNERS = ("ours", "SDK", "Starlette routing", "uvicorn HTTP and event loop", "other")


def owner_of(file: str) -> str | None:
    if any(f"/site-packages/{package}/" in file for package in ("mcp", "mcp_types", "sse_starlette")):
        return "SDK"  # sse-starlette is the SDK's SSE layer (2025-11-25 responses)
    if "/site-packages/" not in file and any(
        part in file for part in ("/mcp_server/", "/shared/", "/auth_server/")
    ):
        return "ours"
    return None


def framework_of(file: str) -> str | None:
    if "/site-packages/starlette/" in file:
        return "Starlette routing"
    if "/site-packages/uvicorn/" in file or "/site-packages/httptools/" in file:
        return "uvicorn HTTP and event loop"
    return None


def short(frame: str) -> str:
    return re.sub(r"/[^ (]*/(site-packages|python3\.\d+)/", "", frame).replace(str(Path.cwd()) + "/", "")


def summarize(raw: str, title: str) -> str:
    owners: collections.Counter[str] = collections.Counter()
    ours: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    self_time: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        owner, deepest = "other", ""
        for frame in frames:
            match = _FRAME.match(frame)
            file = match.group("file") if match else ""
            found = owner_of(file) or framework_of(file)
            if found is not None:
                owner, deepest = found, frame
        owners[owner] += count
        if owner == "ours":
            ours[re.sub(r":\d+\)$", ")", short(deepest))] += count
        for frame in set(frames):
            inclusive[short(frame)] += count
        self_time[short(frames[-1])] += count
    if not total:
        return f"## {title}\n\nno samples\n"
    lines = [f"## {title}", "", f"{total} samples (py-spy --gil)", "", "| owner | share |", "|---|---:|"]
    lines += [f"| {name} | {100 * owners[name] / total:.1f}% |" for name in OWNERS]
    lines += ["", "Our code's share, by its deepest frame:", "", "| share | frame |", "|---:|---|"]
    lines += [f"| {100 * n / total:.1f}% | `{frame}` |" for frame, n in ours.most_common(20)]
    lines += ["", "Heaviest frames, inclusive:", "", "| share | frame |", "|---:|---|"]
    lines += [f"| {100 * n / total:.1f}% | `{frame}` |" for frame, n in inclusive.most_common(45)[8:]]
    lines += ["", "Heaviest frames, self:", "", "| share | frame |", "|---:|---|"]
    lines += [f"| {100 * n / total:.1f}% | `{frame}` |" for frame, n in self_time.most_common(25)]
    return "\n".join(lines) + "\n"


def resummarize(stem: Path, title: str) -> str:
    """The .md again from a recorded .txt (after a change to the owner rules)."""
    report = summarize(Path(f"{stem}.txt").read_text(), title)
    Path(f"{stem}.md").write_text(report)
    return report


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench.profile", description=__doc__)
    names = sorted({s.name for s in setups(False)} - {"bare"})
    parser.add_argument("setup", choices=names)
    parser.add_argument("revision", choices=[MODERN, LEGACY])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--no-pin", dest="pin", action="store_false")
    args = parser.parse_args(argv)
    ensure_wrk()
    setup: Setup = next(s for s in setups(False) if s.name == args.setup)
    RESULTS_DIR.mkdir(exist_ok=True)
    stem = RESULTS_DIR / f"profile-{args.setup}-{args.revision}"
    with (
        tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp,
        started(setup, Path(tmp), args.pin, bench_users(USERS)) as running,
    ):
        clients = prepare_clients(setup, running, args.revision)
        load: dict[str, object] = {}

        proofs = None  # internal-dpop: the run's whole supply of single-use proofs, made first
        if clients.keys:
            count = int(DPOP_FIRST_GUESS_RPS * (args.seconds + 4) * DPOP_PROOF_HEADROOM)
            proofs = write_proofs(running.mcp_url, clients.tokens, clients.keys, count)

        def drive() -> None:
            load.update(
                run_wrk(
                    running.mcp_url,
                    args.revision,
                    clients.tokens,
                    clients.sessions,
                    args.connections,
                    args.seconds + 4,
                    args.pin,
                    proofs,
                )
            )

        wrk = threading.Thread(target=drive)
        wrk.start()
        threading.Event().wait(2)
        popen = running.mcp._process
        assert popen is not None
        beside = Path(sys.executable).parent / "py-spy"
        record = [
            str(beside) if beside.exists() else "py-spy",
            "record",
            "--gil",
            "--full-filenames",
            "-r",
            "200",
            "-d",
            str(round(args.seconds)),
            "-f",
            "raw",
            "-o",
            f"{stem}.txt",
            "-p",
            str(popen.pid),
        ]
        subprocess.run(record, check=True, capture_output=True, timeout=args.seconds + 60)
        wrk.join()
        if proofs is not None:
            Path(proofs).unlink(missing_ok=True)
    rps = load.get("rps", 0)
    title = f"{args.setup} {args.revision}, {args.connections} connections, {rps:.0f} req/s under py-spy"
    report = summarize(Path(f"{stem}.txt").read_text(), title)
    Path(f"{stem}.md").write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
