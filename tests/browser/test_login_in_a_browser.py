"""A person's view of the authorization server, in a real browser (Debian's chromium via Playwright).

The authorization server and a client's callback page run on real uvicorn servers on 127.0.0.1.
The browser opens an authorization URL, signs in as demo/demo, allows access, and must land on
the client's redirect URI with a code, the exact state and the issuer. Also checked where only a
browser can tell: the pages refuse to be framed, and markup in `state` is shown, not run.

A missing chromium or Playwright fails these tests with the command that installs it; they never
skip (the Makefile installs both).
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from auth_server.app import create_auth_routes
from shared.storage.memory import MemoryStore
from tests.fixtures.live_server import live_server
from tests.integration.auth.flow_helpers import new_pkce
from tests.integration.auth.helpers import make_settings

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
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
CLIENT_ID = "browser-test-app"
STATE = "st8 ä/&=+ %20 <ok>"


class CallbackPage:
    """The client's redirect URI: records every query it receives and says thanks."""

    def __init__(self) -> None:
        self.received: list[dict[str, list[str]]] = []
        self._lock = threading.Lock()

    def app(self, _: str) -> Starlette:
        async def callback(request: Request) -> Response:
            with self._lock:
                self.received.append(parse_qs(request.url.query, keep_blank_values=True))
            return HTMLResponse("<h1>Signed in</h1>")

        return Starlette(routes=[Route("/callback", callback)])


@pytest.fixture(scope="module")
def callback() -> Iterator[tuple[CallbackPage, str]]:
    page = CallbackPage()
    with live_server(page.app) as base_url:
        yield page, f"{base_url}/callback"


@pytest.fixture(scope="module")
def issuer(callback: tuple[CallbackPage, str]) -> Iterator[str]:
    _, redirect_uri = callback

    def make_app(base_url: str) -> Starlette:
        settings = make_settings(
            auth_issuer_url=base_url,
            mcp_public_url=base_url,
            auth_clients=[
                {"client_id": CLIENT_ID, "client_name": "Browser Test App", "redirect_uris": [redirect_uri]}
            ],
        )
        return Starlette(routes=create_auth_routes(settings, MemoryStore()))

    with live_server(make_app) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright is not installed: run `.venv/bin/pip install playwright` (or `make install`)")
    if shutil.which(CHROMIUM) is None:
        pytest.fail(
            f"{CHROMIUM} is missing: run `apt-get install -y chromium` (or `make system-deps`); "
            "the browser tests fail rather than skip"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def authorization_url(issuer: str, redirect_uri: str, **params: str) -> str:
    query = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": redirect_uri,
        "code_challenge": new_pkce().challenge,
        "code_challenge_method": "S256",
        "state": STATE,
        "scope": "notes:read notes:write",
        **params,
    }
    return f"{issuer}/authorize?{urlencode(query)}"


def test_a_person_signs_in_allows_access_and_reaches_the_client_with_a_code(
    browser: Any, issuer: str, callback: tuple[CallbackPage, str]
) -> None:
    received, redirect_uri = callback
    context = browser.new_context()
    page = context.new_page()

    login = page.goto(authorization_url(issuer, redirect_uri))
    assert login is not None
    assert urlsplit(page.url).path == "/login"
    assert login.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in login.headers["content-security-policy"]
    page.fill("input[name=username]", "demo")
    page.fill("input[name=password]", "demo")
    page.click("button[type=submit]")

    page.wait_for_url(f"{issuer}/consent?*")
    body = page.inner_text("main")
    assert "Browser Test App" in body
    assert urlsplit(redirect_uri).netloc in body  # the redirect host is shown
    assert "Add and delete your notes" in body  # scopes in words
    assert "own computer" in body  # localhost-only warning
    page.get_by_role("button", name="Allow").click()

    page.wait_for_url(f"{redirect_uri}?*")
    params = parse_qs(urlsplit(page.url).query)
    assert len(params["code"][0]) >= 43
    assert params["state"] == [STATE]
    assert params["iss"] == [issuer]
    assert page.inner_text("h1") == "Signed in"
    assert received.received[-1]["code"] == params["code"]
    context.close()


def test_denying_in_the_browser_returns_access_denied_with_state_and_iss(
    browser: Any, issuer: str, callback: tuple[CallbackPage, str]
) -> None:
    _, redirect_uri = callback
    context = browser.new_context()
    page = context.new_page()
    # a scope nobody consented to yet in this module's server (consent is remembered per user)
    page.goto(authorization_url(issuer, redirect_uri, scope="mcp:prompts:read"))
    page.fill("input[name=username]", "demo")
    page.fill("input[name=password]", "demo")
    page.click("button[type=submit]")
    page.wait_for_url(f"{issuer}/consent?*")
    page.get_by_role("button", name="Deny").click()
    page.wait_for_url(f"{redirect_uri}?*")
    params = parse_qs(urlsplit(page.url).query)
    assert params["error"] == ["access_denied"]
    assert params["state"] == [STATE]
    assert params["iss"] == [issuer]
    context.close()


def test_a_wrong_password_keeps_the_person_on_the_login_page(
    browser: Any, issuer: str, callback: tuple[CallbackPage, str]
) -> None:
    _, redirect_uri = callback
    context = browser.new_context()
    page = context.new_page()
    page.goto(authorization_url(issuer, redirect_uri))
    page.fill("input[name=username]", "demo")
    page.fill("input[name=password]", "not-demo")
    page.click("button[type=submit]")
    page.wait_for_load_state("load")
    assert urlsplit(page.url).path == "/login"
    assert "wrong" in page.inner_text("main")
    context.close()


def test_markup_in_state_is_shown_as_text_and_never_runs(browser: Any, issuer: str) -> None:
    context = browser.new_context()
    page = context.new_page()
    dialogs: list[str] = []

    def record(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", record)
    script = "<script>window.__pwned = 1; alert('xss')</script>"
    url = f"{issuer}/authorize?" + urlencode({"client_id": "no-such-client", "state": script})
    response = page.goto(url)
    assert response is not None
    assert response.status == 400
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    page.locator("details summary").click()
    assert script in page.inner_text("main")  # shown literally, as text
    assert page.evaluate("window.__pwned") is None
    assert dialogs == []
    context.close()


def test_the_login_page_refuses_to_be_framed(
    browser: Any, issuer: str, callback: tuple[CallbackPage, str]
) -> None:
    _, redirect_uri = callback
    context = browser.new_context()
    page = context.new_page()
    page.goto(redirect_uri)  # another origin: the client's page
    page.set_content(
        f'<iframe id="control" src="{redirect_uri}"></iframe>'
        f'<iframe id="login" src="{authorization_url(issuer, redirect_uri)}"></iframe>'
    )
    # the control proves framing works in this setup; the login page must not render inside it
    assert page.frame_locator("#control").locator("h1").inner_text() == "Signed in"
    page.wait_for_timeout(1000)
    assert page.frame_locator("#login").locator("input[name=password]").count() == 0
    context.close()
