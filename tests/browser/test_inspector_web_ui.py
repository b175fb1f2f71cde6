"""MCP Inspector's web UI in a real browser (Debian's chromium through Playwright) against /mcp.

This is how most people first meet the server: add it in Inspector, flip "connect", sign in and
approve on our pages, see the tools. Inspector's Node backend does discovery, registration and
the token exchange; the browser tab itself goes to /authorize and our login and consent pages
(filled in and clicked here like a person would) and comes back to Inspector's /oauth/callback.
Each test starts its own Inspector (fresh HOME, in-memory secrets), so the login really happens.
It runs in both modes and on both stores: internal-memory and external-redis (`EACH_MODE_AND_STORE`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e import fixtures as e2e
from tests.e2e.node_tools import node_env, tool
from tests.e2e.servers import Deployment
from tests.fixtures.launch import ServerProcess, free_port

pytestmark = pytest.mark.browser

# The real-server fixtures of tests/e2e, used here too (one definition of how servers start).
deployment = e2e.deployment
pytest_generate_tests = e2e.pytest_generate_tests
e2e_redis = e2e.e2e_redis

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STEP_TIMEOUT_MS = 20_000


@dataclass
class InspectorWeb:
    url: str
    log: Path


@pytest.fixture
def inspector_web(tmp_path: Path) -> Iterator[InspectorWeb]:
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    env = node_env(
        home,
        MCP_INSPECTOR_SECRET_STORE="memory",
        MCP_AUTO_OPEN_ENABLED="false",
        HOST="127.0.0.1",
        CLIENT_PORT=str(port),
        MCP_SANDBOX_PORT=str(free_port()),
        MCP_APP_ORIGIN_PORT=str(free_port()),
    )
    url = f"http://127.0.0.1:{port}"
    # Its own process group: `mcp-inspector --web` starts its proxy and web server as children.
    inspector = ServerProcess(
        "inspector", [str(tool("mcp-inspector")), "--web"], env, f"{url}/healthz", home, process_group=True
    )
    inspector.launch()
    try:
        inspector.wait_healthy(30)
        yield InspectorWeb(url, inspector.log_path)
    finally:
        inspector.stop()


def _require_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.fail(
            "Debian's chromium is missing (/usr/bin/chromium): run `make system-deps` or "
            "`apt-get install -y chromium`. The browser tests fail rather than skip.",
            pytrace=False,
        )


@pytest.mark.parametrize("deployment", e2e.EACH_MODE_AND_STORE, indirect=True)
def test_inspector_web_ui_connects_through_our_login_and_consent_pages_and_lists_the_tools(
    deployment: Deployment, inspector_web: InspectorWeb, tmp_path: Path
) -> None:
    _require_chromium()
    from playwright.sync_api import sync_playwright

    visited: list[str] = []
    console_errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            context.set_default_timeout(STEP_TIMEOUT_MS)

            def local_only(route, request) -> None:  # type: ignore[no-untyped-def]
                if request.url.startswith(("http://127.0.0.1", "data:", "blob:")):
                    route.continue_()
                else:
                    route.abort()  # e.g. a web-font stylesheet: keep the run offline and predictable

            context.route("**/*", local_only)
            page = context.new_page()
            page.on(
                "framenavigated",
                lambda frame: visited.append(frame.url) if frame == page.main_frame else None,
            )
            page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)

            try:
                page.goto(inspector_web.url, wait_until="load")
                page.get_by_role("button", name="Add Servers").click()
                page.get_by_role("menuitem", name="+ Add manually").click()
                dialog = page.get_by_role("dialog", name="Add server")
                dialog.get_by_role("textbox", name="Server ID").fill("reference")
                dialog.get_by_role("textbox", name="Transport").click()
                page.get_by_role("option", name="streamable-http", exact=True).click()
                dialog.get_by_role("textbox", name="URL").fill(deployment.mcp_url)
                dialog.get_by_role("button", name="Add").click()

                switch = page.get_by_role("switch", name='Connect or disconnect "reference"')
                switch.wait_for()
                page.wait_for_timeout(300)  # the card finishes mounting; an early click is lost
                switch.click(force=True)

                # Inspector sends this very tab to our authorization server.
                page.wait_for_url(f"{deployment.issuer}/login**")
                page.get_by_label("User name").fill("demo")
                page.get_by_label("Password").fill("demo")
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_url(f"{deployment.issuer}/consent**")
                page.get_by_role("button", name="Allow").click()

                # ... and back to Inspector, which exchanges the code and connects.
                page.wait_for_url(f"{inspector_web.url}/**")
                page.get_by_test_id("connection-status").get_by_text("Tools", exact=True).click()
                tools = page.get_by_test_id("tools-screen")
                tools.get_by_text("whoami", exact=True).first.wait_for()
                tools.get_by_text("notes_list", exact=True).first.wait_for()

                tools.get_by_text("whoami", exact=True).first.click()
                tools.get_by_role("button", name="Execute Tool").click()
                tools.get_by_text('"subject": "demo"').first.wait_for()
            except Exception:
                page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
                raise AssertionError(
                    f"pages visited: {visited}\nconsole errors: {console_errors}\n"
                    f"screenshot: {tmp_path / 'failure.png'}\ninspector log:\n"
                    f"{inspector_web.log.read_text()[-3000:]}\n{deployment.logs()}"
                ) from None
        finally:
            browser.close()

    assert any(url.startswith(f"{deployment.issuer}/login") for url in visited), visited
    assert any(url.startswith(f"{deployment.issuer}/consent") for url in visited), visited
    assert any(url.startswith(f"{inspector_web.url}/oauth/callback") for url in visited), visited
