"""`make help` (the default goal) lists every target of the Makefile, so none is a secret."""

from __future__ import annotations

import re
import subprocess

from tests.docs.runnable import REPO_ROOT

_TARGET = re.compile(r"^([a-z][a-z0-9-]*):", re.MULTILINE)


def test_make_help_lists_every_target_with_a_description() -> None:
    targets = set(_TARGET.findall((REPO_ROOT / "Makefile").read_text())) - {"help"}
    assert {"dev-stdio", "install", "node-tools", "test"} <= targets, targets
    done = subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO_ROOT)],  # no goal: the default, help
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    described = {}
    for line in done.stdout.splitlines():
        match = re.fullmatch(r"make ([a-z0-9-]+)\s+(\S.*)", line.strip())
        if match:
            described[match[1]] = match[2]
    assert not targets - described.keys(), (
        f"targets missing from make help: {sorted(targets - described.keys())}"
    )
    assert not described.keys() - targets, (
        f"make help names no such target: {sorted(described.keys() - targets)}"
    )
