"""The account page and logout in a real browser (Debian's chromium via Playwright).

A person signs in on the account page itself, authorizes an app, finds it on the account page,
revokes it, and signs out, by clicking what the pages show. And what only a browser can show:
another site's page (a different port of the same host: same-site, so SameSite=Lax cookies go
along) that auto-submits a form to /logout or /account/revoke ends nothing, because it cannot know
the session's CSRF token.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from tests.browser.test_login_in_a_browser import (  # noqa: F401 - module-scoped fixtures reused here
    CallbackPage,
    authorization_url,
    browser,
    callback,
    issuer,
)
from tests.fixtures.live_server import live_server

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def attacker() -> Iterator[str]:
    """Another site: /forge?action=URL&field=value... answers a form that submits itself there."""

    def make_app(_: str) -> Starlette:
        async def forge(request: Request) -> Response:
            params = dict(request.query_params)
            action = params.pop("action")
            fields = "".join(
                f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                for k, v in params.items()
            )
            return HTMLResponse(
                f'<form id="f" method="post" action="{html.escape(action)}">{fields}</form>'
                "<script>document.getElementById('f').submit()</script>"
            )

        return Starlette(routes=[Route("/forge", forge)])

    with live_server(make_app) as base_url:
        yield base_url


def sign_in_on_the_account_page(page: Any, issuer: str) -> None:  # noqa: F811
    page.goto(f"{issuer}/account")
    page.fill("input[name=username]", "demo")
    page.fill("input[name=password]", "demo")
    page.click("button[type=submit]")
    page.wait_for_url(f"{issuer}/account")


def test_a_person_finds_the_app_on_the_account_page_revokes_it_and_signs_out(
    browser: Any,  # noqa: F811
    issuer: str,  # noqa: F811
    callback: tuple[CallbackPage, str],  # noqa: F811
) -> None:
    _, redirect_uri = callback
    context = browser.new_context()
    page = context.new_page()
    sign_in_on_the_account_page(page, issuer)
    assert "You have not authorized any app" in page.inner_text("main")

    page.goto(authorization_url(issuer, redirect_uri))  # signed in already: straight to consent
    page.wait_for_url(f"{issuer}/consent?*")
    page.get_by_role("link", name="Apps you authorized").wait_for()
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(f"{redirect_uri}?*")

    response = page.goto(f"{issuer}/account")
    assert response is not None
    assert response.headers["x-frame-options"] == "DENY"
    body = page.inner_text("main")
    assert "Browser Test App" in body
    assert "unverified name" not in body  # a configured client: the operator vouches for its name
    assert urlsplit(redirect_uri).netloc in body
    assert "Add and delete your notes" in body
    assert "Last used" in body
    page.get_by_role("button", name="Revoke access for Browser Test App").click()
    page.wait_for_url(f"{issuer}/account?revoked=1")
    body = page.inner_text("main")
    assert "Access revoked" in body
    assert "Browser Test App" not in body

    page.get_by_role("link", name="Sign out").click()
    page.wait_for_url(f"{issuer}/logout")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_load_state("load")
    assert "You are signed out" in page.inner_text("main")
    assert not [c for c in context.cookies() if c["name"] == "mcp_as_session"]
    page.goto(f"{issuer}/account")
    assert page.locator("input[name=password]").count() == 1
    context.close()


def test_another_sites_auto_submitting_forms_end_neither_the_session_nor_an_app(
    browser: Any,  # noqa: F811
    issuer: str,  # noqa: F811
    callback: tuple[CallbackPage, str],  # noqa: F811
    attacker: str,
) -> None:
    _, redirect_uri = callback
    context = browser.new_context()
    page = context.new_page()
    sign_in_on_the_account_page(page, issuer)
    page.goto(authorization_url(issuer, redirect_uri, scope="notes:read"))
    page.wait_for_url(f"{issuer}/consent?*")
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(f"{redirect_uri}?*")

    for action, fields in (
        (f"{issuer}/logout", "csrf=guessed"),
        (f"{issuer}/account/revoke", "client_id=browser-test-app&csrf=guessed"),
    ):
        page.goto(f"{attacker}/forge?action={action}&{fields}")
        page.wait_for_url(action)
        assert "This form has expired" in page.inner_text("main")

    page.goto(f"{issuer}/account")
    assert "Browser Test App" in page.inner_text("main")  # still signed in, the app still listed
    context.close()
