"""MCP Inspector 2.12.0's CLI runs its own OAuth flow against the real servers, headlessly.

Inspector discovers, registers (DCR), does PKCE and opens the authorization URL through
`$BROWSER` (with MCP_AUTO_OPEN_ENABLED=true and no terminal); our `$BROWSER` is
tests/e2e/inspector_browser.py, which logs in and consents through our pages and lands on
Inspector's callback listener. Every test gets a fresh HOME, so nothing is remembered from
another test; within a test the file secret store keeps the tokens between two CLI runs.
Both modes, on Redis and in memory (issue 4): `EACH_MODE_AND_STORE` of tests/e2e/fixtures.py.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.fixtures import EACH_MODE_AND_STORE
from tests.e2e.node_tools import node_env, tool
from tests.e2e.servers import Deployment, free_port

BROWSER_SCRIPT = Path(__file__).with_name("inspector_browser.py")
RUN_TIMEOUT = 90


class Inspector:
    """`mcp-inspector --cli` with its own HOME, browser hook and callback port."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.home.mkdir(parents=True, exist_ok=True)
        self.browser_log = home / "browser.log"
        self.callback_url = f"http://127.0.0.1:{free_port()}/oauth/callback"

    def run(self, url: str, *args: str) -> dict[str, Any]:
        command = [str(tool("mcp-inspector")), "--cli", url, "--format", "json"]
        command += ["--callback-url", self.callback_url, *args]
        env = node_env(
            self.home,
            MCP_AUTO_OPEN_ENABLED="true",
            BROWSER=str(BROWSER_SCRIPT),
            E2E_BROWSER_LOG=str(self.browser_log),
            MCP_INSPECTOR_SECRET_STORE="file",
        )
        done = subprocess.run(
            command,
            env=env,
            cwd=self.home,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
        assert done.returncode == 0, (
            f"inspector exited {done.returncode}\nstdout: {done.stdout[-3000:]}\n"
            f"stderr: {done.stderr[-3000:]}\nbrowser: {self.browser_log_text()}"
        )
        output = json.loads(done.stdout)
        assert "error" not in output, output
        result: dict[str, Any] = output["result"]
        return result

    def browser_log_text(self) -> str:
        return self.browser_log.read_text() if self.browser_log.exists() else "(the browser was never opened)"

    @property
    def logins(self) -> int:
        return self.browser_log_text().count("callback answered 200")


def whoami_subject(result: dict[str, Any]) -> str:
    assert not result.get("isError"), result
    return str(result["structuredContent"]["subject"])


@pytest.mark.parametrize("deployment", EACH_MODE_AND_STORE, indirect=True)
def test_inspector_cli_logs_in_through_our_pages_and_lists_the_tools(
    deployment: Deployment, tmp_path: Path
) -> None:
    inspector = Inspector(tmp_path / "home")
    result = inspector.run(deployment.mcp_url, "--method", "tools/list")
    names = {t["name"] for t in result["tools"]}
    assert {"whoami", "notes_list"} <= names, names
    assert inspector.logins == 1, inspector.browser_log_text()
    assert "login=True consent=True" in inspector.browser_log_text()


@pytest.mark.parametrize("era", ["legacy", "modern"])
@pytest.mark.parametrize("deployment", EACH_MODE_AND_STORE, indirect=True)
def test_inspector_cli_whoami_returns_the_demo_user_and_reuses_the_stored_token(
    deployment: Deployment, tmp_path: Path, era: str
) -> None:
    inspector = Inspector(tmp_path / "home")
    args = ("--method", "tools/call", "--tool-name", "whoami", "--protocol-era", era)
    first = inspector.run(deployment.mcp_url, *args)
    assert whoami_subject(first) == "demo"
    assert inspector.logins == 1, inspector.browser_log_text()

    second = inspector.run(deployment.mcp_url, *args)
    assert whoami_subject(second) == "demo"
    assert inspector.logins == 1, "the stored token should have been reused without a new login"


@pytest.mark.parametrize("deployment", [pytest.param(("none", "memory"), id="none-memory")], indirect=True)
def test_inspector_cli_connects_without_any_login_when_auth_mode_is_none(
    deployment: Deployment, tmp_path: Path
) -> None:
    inspector = Inspector(tmp_path / "home")
    listed = inspector.run(deployment.mcp_url, "--method", "tools/list")
    assert "whoami" in {t["name"] for t in listed["tools"]}
    who = inspector.run(deployment.mcp_url, "--method", "tools/call", "--tool-name", "whoami")
    assert whoami_subject(who) == "anonymous"
    assert who["structuredContent"]["authenticated"] is False
    assert not inspector.browser_log.exists(), "no browser should open without authentication"
