"""mcp-remote 0.15.1, the stdio-to-HTTP proxy Claude Desktop and other stdio-only clients use.

The MCP Python SDK's stdio client launches `mcp-remote <url> <callback port>` (the command
docs/connecting-clients.md gives, with a callback port of the test's own) exactly as a desktop
client would, and talks MCP to it over stdin/stdout. mcp-remote discovers the authorization
server, registers itself, does PKCE and opens the authorization URL with the `open` package,
which runs xdg-open, which runs `$BROWSER <url>`: tests/e2e/inspector_browser.py, which signs in
as demo/demo and consents on our pages and lands on mcp-remote's callback listener. Each test
gets its own HOME and MCP_REMOTE_CONFIG_DIR (where mcp-remote keeps its client and tokens), so
nothing is remembered from another test. Both auth modes.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from tests.e2e.fixtures import BOTH_MODES_MEMORY
from tests.e2e.node_tools import MCP_REMOTE_BIN, node_env, tool
from tests.e2e.sdk_client import structured
from tests.e2e.servers import Deployment, free_port

BROWSER_SCRIPT = Path(__file__).with_name("inspector_browser.py")
CALL_TIMEOUT = 60.0  # the first request waits for the whole sign-in


class McpRemote:
    """How a desktop client runs mcp-remote: a child process speaking MCP on stdio."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.home.mkdir(parents=True, exist_ok=True)
        self.config_dir = home / ".mcp-auth"
        self.browser_log = home / "browser.log"
        self.stderr_path = home / "mcp-remote.stderr"
        self.callback_port = free_port()

    @contextlib.asynccontextmanager
    async def connect(self, url: str, *extra: str, mode: str = "legacy") -> AsyncIterator[Client]:
        params = StdioServerParameters(
            command=str(tool("mcp-remote", MCP_REMOTE_BIN)),
            args=[url, str(self.callback_port), *extra],
            env=node_env(
                self.home,
                BROWSER=str(BROWSER_SCRIPT),
                E2E_BROWSER_LOG=str(self.browser_log),
                MCP_REMOTE_CONFIG_DIR=str(self.config_dir),
            ),
            cwd=self.home,
        )
        with self.stderr_path.open("a") as stderr:
            async with Client(
                stdio_client(params, errlog=stderr), mode=mode, read_timeout_seconds=CALL_TIMEOUT
            ) as client:
                yield client

    def browser_log_text(self) -> str:
        return self.browser_log.read_text() if self.browser_log.exists() else "(the browser was never opened)"

    def diagnostics(self) -> str:
        stderr = self.stderr_path.read_text() if self.stderr_path.exists() else ""
        return f"browser: {self.browser_log_text()}\nmcp-remote stderr (tail): {stderr[-3000:]}"

    @property
    def logins(self) -> int:
        return self.browser_log_text().count("callback answered 200")


@pytest.mark.parametrize("deployment", BOTH_MODES_MEMORY, indirect=True)
async def test_mcp_remote_signs_in_through_our_pages_lists_the_tools_and_calls_whoami_over_stdio(
    deployment: Deployment, tmp_path: Path
) -> None:
    remote = McpRemote(tmp_path / "home")
    async with remote.connect(deployment.mcp_url) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        who = await client.call_tool("whoami", {})

    assert {"whoami", "notes_list", "notes_add"} <= names, remote.diagnostics()
    assert not who.is_error, remote.diagnostics()
    identity = structured(who)
    assert identity["subject"] == "demo"
    assert identity["audience"] == [deployment.mcp_url]  # a token bound to this server (RFC 8707)
    assert identity["issuer"] == deployment.issuer
    assert remote.logins == 1, remote.diagnostics()
    assert "login=True consent=True" in remote.browser_log_text()
    # mcp-remote registered itself (DCR) with a loopback redirect URI on its own callback port.
    assert f"localhost%3A{remote.callback_port}%2Foauth%2Fcallback" in remote.browser_log_text()


@pytest.mark.parametrize("deployment", BOTH_MODES_MEMORY, indirect=True)
async def test_a_second_mcp_remote_reuses_the_stored_token_and_bridges_to_2026_07_28_without_a_login(
    deployment: Deployment, tmp_path: Path
) -> None:
    remote = McpRemote(tmp_path / "home")
    async with remote.connect(deployment.mcp_url) as client:
        first = structured(await client.call_tool("whoami", {}))
    assert remote.logins == 1, remote.diagnostics()
    first_run_stderr = len(remote.stderr_path.read_text())

    # `--protocol auto`: mcp-remote asks server/discover, finds 2026-07-28 and rewrites the local
    # client's 2025-11-25 requests into stateless ones, with the token it stored the first time.
    async with remote.connect(deployment.mcp_url, "--protocol", "auto") as client:
        second = await client.call_tool("whoami", {})

    assert not second.is_error, remote.diagnostics()
    assert structured(second)["subject"] == "demo"
    assert structured(second)["client_id"] == first["client_id"]  # the same registration
    assert remote.logins == 1, "the stored token should have been reused without a new login"
    second_run_stderr = remote.stderr_path.read_text()[first_run_stderr:]
    assert "speaks MCP 2026-07-28" in second_run_stderr, remote.diagnostics()


@pytest.mark.parametrize("deployment", [pytest.param(("none", "memory"), id="none-memory")], indirect=True)
async def test_mcp_remote_connects_without_any_login_when_auth_mode_is_none(
    deployment: Deployment, tmp_path: Path
) -> None:
    remote = McpRemote(tmp_path / "home")
    async with remote.connect(deployment.mcp_url) as client:
        who = structured(await client.call_tool("whoami", {}))
    assert who["subject"] == "anonymous"
    assert who["authenticated"] is False
    assert not remote.browser_log.exists(), "no browser should open without authentication"
