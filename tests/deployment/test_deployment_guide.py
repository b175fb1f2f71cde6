"""docs/deployment.md followed as written: its runnable blocks, its systemd units, its nginx site.

The page's runnable blocks run in order in one shell (tests/docs/runnable.py), with its paths and
names replaced by temporary ones: /opt/mcp-reference-server is a folder that sees this checkout,
/etc/... are folders of the test, https://mcp.example.com is nginx on a free 127.0.0.1 port whose
certificate curl trusts through CURL_CA_BUNDLE, Redis listens on a free port. Where the reader
starts things by hand (step 4, "systemctl enable --now"), the session pauses and the test does it:
redis-server with the page's Redis settings and password, the MCP server with the unit's
ExecStart in the unit's WorkingDirectory (so it reads the .env the page wrote), nginx with the
page's site. Then the page's checks run through the proxy, the OAuth flow as alice included.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deployment.proxies import (
    DEV_MCP_UPSTREAM,
    GUIDE,
    MCP_NAME,
    Proxy,
    Routes,
    throwaway_certificate,
)
from tests.docs import runnable
from tests.e2e.node_tools import VENV_BIN
from tests.e2e.servers import ServerProcess, clean_environ
from tests.fixtures.launch import free_port
from tests.fixtures.redis_server import RedisServer

UNITS = ("/etc/systemd/system/mcp-reference-server.service", "/etc/systemd/system/mcp-reference-auth.service")
PAUSE_HEADING = "## 6. Check it from outside"


def unit_value(unit: str, key: str) -> str:
    match = re.search(rf"^{key}=(.+)$", unit, re.MULTILINE)
    assert match, f"the unit has no {key}="
    return match[1].strip()


def map_paths(text: str, paths: dict[str, str]) -> str:
    for page_path, test_path in sorted(paths.items(), key=lambda item: -len(item[0])):
        text = text.replace(page_path, test_path)
    return text


def redis_from(conf: Path, directory: Path, port: int) -> RedisServer:
    """redis-server with the directives the page puts in /etc/redis/mcp-reference-server.conf."""
    directives = [line.split(None, 1) for line in conf.read_text().splitlines() if line.strip()]
    settings = {name: value for name, value in directives if not name.startswith("#")}
    password = settings.pop("requirepass")
    extra = [word for name, value in settings.items() for word in (f"--{name}", value)]
    return RedisServer(directory, port, appendonly=False, password=password, extra_args=extra)


def test_the_guide_runs_as_written_behind_nginx_with_redis(tmp_path: Path) -> None:
    reader = runnable.scratch_folder(tmp_path / "opt")
    etc = tmp_path / "etc"
    listen, redis_port, mcp_port = free_port(), free_port(), free_port()
    public = f"https://127.0.0.1:{listen}"
    paths = {
        "/opt/mcp-reference-server": str(reader),
        "/etc/mcp-reference-server": str(etc / "mcp-reference-server"),
        "/etc/redis": str(etc / "redis"),
        f"https://{MCP_NAME}": public,
        "127.0.0.1:6379": f"127.0.0.1:{redis_port}",
    }
    certificate = throwaway_certificate(tmp_path / "tls")
    unit = map_paths(runnable.file_block(GUIDE, UNITS[0]).code, paths)
    text = (runnable.REPO_ROOT / GUIDE).read_text()
    pause = text[: text.index(PAUSE_HEADING)].count("\n") + 1
    started: list[RedisServer | ServerProcess | Proxy] = []

    def start_what_the_reader_starts() -> None:
        redis = redis_from(etc / "redis" / "mcp-reference-server.conf", tmp_path / "redis", redis_port)
        redis.start()
        started.append(redis)
        workdir = Path(unit_value(unit, "WorkingDirectory"))
        server = ServerProcess(
            "mcp_server",
            shlex.split(unit_value(unit, "ExecStart")),
            clean_environ({"MCP_PORT": str(mcp_port)}),  # a free port instead of 3232
            f"http://127.0.0.1:{mcp_port}/healthz",
            workdir,
        )
        server.start()
        started.append(server)
        routes = Routes({MCP_NAME: listen}, {DEV_MCP_UPSTREAM: mcp_port}, free_port())
        started.append(Proxy("nginx", routes, certificate, tmp_path / "nginx").start())

    env = clean_environ({"HOME": str(tmp_path), "CURL_CA_BUNDLE": str(certificate.ca)})
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
    try:
        done = runnable.run_session(
            GUIDE, paths, reader, env, pause_before=pause, on_pause=start_what_the_reader_starts
        )
        logs = "\n".join(
            f"--- {item.name} log ---\n{item.log_path.read_text(errors='replace')}"
            for item in started
            if isinstance(item, ServerProcess)
        )
    finally:
        for item in reversed(started):
            item.stop()
    assert len(started) == 3, f"the session ended before step 6:\n{done.stdout[-6000:]}"
    assert done.returncode == 0, (
        f"{runnable.failed_block(done.stdout)} failed:\n{done.stdout[-8000:]}\n{logs[-6000:]}"
    )
    assert "All 11 steps passed." in done.stdout
    assert "whoami: subject=alice " in done.stdout, done.stdout[-3000:]
    assert f"Connect your MCP client to {public}/mcp" in logs, "the server did not take the page's .env"
    assert "access_token = eyJ" in done.stdout, (
        "no JWT access token: the page's TOKEN_FORMAT=jwt was not taken"
    )
    assert f"store: Redis at redis://127.0.0.1:{redis_port}/0" in logs, logs


@pytest.mark.parametrize("path", UNITS)
def test_systemd_accepts_the_units_of_the_guide(path: str, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is missing (Debian: the systemd package)", pytrace=False)
    paths = {  # what the unit names must exist for the check: the real checkout and a folder
        "/opt/mcp-reference-server/.venv/bin/python": str(VENV_BIN / "python"),
        "/etc/mcp-reference-server": str(tmp_path),
    }
    unit = tmp_path / Path(path).name
    unit.write_text(map_paths(runnable.file_block(GUIDE, path).code, paths))
    done = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    said = f"systemd-analyze verify {path}: exit {done.returncode}\n{done.stdout}{done.stderr}"
    assert done.returncode == 0, said
    assert not (done.stdout + done.stderr).strip(), said  # not even a warning
