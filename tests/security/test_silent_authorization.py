"""Silent codes for clients that cannot authenticate (issue 9 item 5, RFC 8252 section 8.6).

The attack: the user once approved a public loopback client (Claude Code, Inspector, ...). Any
other program on the machine then opens the user's browser at /authorize with that client_id,
its own PKCE pair and its own loopback port. Before the fix, the remembered consent answered at
once with a code for the attacker's port, for as long as the 8-hour sign-in lasted; the code and
the attacker's verifier bought the user's tokens.

Now such a request always shows a page: the one-click continue page, naming the app and where the
code goes, CSRF- and frame-protected like the consent page. In internal mode on Redis (the pages and the
consent memory are the same code in every mode and store, tests/integration/auth/conftest.py);
public clients however they became known (registered, configured).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import httpx2
import pytest

from auth_server.users import hash_password
from tests.integration.auth.conftest import HttpFactory
from tests.integration.auth.flow_helpers import (
    authorize_params,
    callback_dict,
    exchange_code,
    form_action,
    hidden_fields,
    new_pkce,
    register,
    run_flow,
    sign_in,
)
from tests.integration.auth.helpers import server_client

USER = ("alice", "alice-password-123")
ATTACKER_REDIRECT = "http://127.0.0.1:6666/callback"  # another program, another port
CONFIGURED_PUBLIC = {
    "client_id": "configured-native-app",
    "client_name": "Configured native app",
    "redirect_uris": ["http://127.0.0.1/callback"],
    "token_endpoint_auth_method": "none",
}


async def public_client(http: httpx2.AsyncClient, kind: str) -> str:
    if kind == "registered":
        return str((await register(http, client_name="Claude Code"))["client_id"])
    return str(CONFIGURED_PUBLIC["client_id"])


@pytest.fixture(params=["registered", "configured"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def browser(make_http: HttpFactory) -> httpx2.AsyncClient:
    """The user's browser, at a server that knows alice and the configured public client."""
    return await make_http(auth_users={USER[0]: hash_password(USER[1])}, auth_clients=[CONFIGURED_PUBLIC])


async def consent_once(browser: httpx2.AsyncClient, client_id: str) -> None:
    """What the user really did: one sign-in and one consent for the genuine app."""
    done = await run_flow(
        browser,
        authorize_params(client_id, new_pkce(), redirect_uri="http://127.0.0.1:5000/callback"),
        username=USER[0],
        password=USER[1],
    )
    assert "code" in callback_dict(done.headers["location"])


def attacker_params(client_id: str, **extra: Any) -> dict[str, str]:
    return authorize_params(client_id, new_pkce(), redirect_uri=ATTACKER_REDIRECT, state="evil", **extra)


async def test_a_remembered_consent_never_sends_a_public_clients_code_without_a_page(
    browser: httpx2.AsyncClient, kind: str
) -> None:
    client_id = await public_client(browser, kind)
    await consent_once(browser, client_id)

    attack = await browser.get("/authorize", params=attacker_params(client_id))

    assert attack.status_code == 302
    location = attack.headers["location"]
    assert not location.startswith(ATTACKER_REDIRECT), "a code went to the other program silently"
    assert urlsplit(location).path == "/consent"
    page = await browser.get(location)
    assert page.status_code == 200
    assert re.search(
        r"Continue to <strong>.*</strong>.* at <span class=\"mono\">127\.0\.0\.1:6666</span>", page.text
    )
    assert "a program on your own computer" in page.text  # the loopback warning
    assert 'value="approve">Continue</button>' in page.text


async def test_the_continue_page_is_frame_and_csrf_protected(browser: httpx2.AsyncClient, kind: str) -> None:
    client_id = await public_client(browser, kind)
    await consent_once(browser, client_id)
    location = (await browser.get("/authorize", params=attacker_params(client_id))).headers["location"]
    page = await browser.get(location)

    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    fields = hidden_fields(page.text)
    for forged in ({**fields, "csrf": "forged"}, {"request": fields["request"]}):
        refused = await browser.post(form_action(page.text), data={**forged, "decision": "approve"})
        assert refused.status_code == 400
        assert "location" not in refused.headers


async def test_the_continue_page_cannot_be_answered_from_another_browser(
    browser: httpx2.AsyncClient, kind: str
) -> None:
    client_id = await public_client(browser, kind)
    await consent_once(browser, client_id)
    location = (await browser.get("/authorize", params=attacker_params(client_id))).headers["location"]
    page = await browser.get(location)
    async with server_client(str(browser.base_url)) as other:  # its own cookie jar and address
        answer = {**hidden_fields(page.text), "decision": "approve"}
        replayed = await other.post(form_action(page.text), data=answer)
    assert replayed.status_code == 400
    assert "location" not in replayed.headers


async def test_one_click_on_continue_sends_the_code_where_the_page_said(
    browser: httpx2.AsyncClient, kind: str
) -> None:
    client_id = await public_client(browser, kind)
    await consent_once(browser, client_id)
    pkce = new_pkce()
    params = authorize_params(client_id, pkce, redirect_uri=ATTACKER_REDIRECT)
    location = (await browser.get("/authorize", params=params)).headers["location"]
    page = await browser.get(location)
    answered = await browser.post(
        form_action(page.text), data={**hidden_fields(page.text), "decision": "approve"}
    )
    assert answered.status_code == 303
    assert answered.headers["location"].startswith(ATTACKER_REDIRECT)
    code = callback_dict(answered.headers["location"])["code"]
    tokens = await exchange_code(browser, code, client_id, pkce, redirect_uri=ATTACKER_REDIRECT)
    assert tokens.status_code == 200, tokens.text


async def test_cancel_on_the_continue_page_ends_the_request_with_access_denied(
    browser: httpx2.AsyncClient, kind: str
) -> None:
    client_id = await public_client(browser, kind)
    await consent_once(browser, client_id)
    location = (await browser.get("/authorize", params=attacker_params(client_id))).headers["location"]
    page = await browser.get(location)
    answered = await browser.post(
        form_action(page.text), data={**hidden_fields(page.text), "decision": "deny"}
    )
    assert answered.status_code == 303
    assert callback_dict(answered.headers["location"])["error"] == "access_denied"


async def test_signing_in_again_still_shows_the_continue_page(browser: httpx2.AsyncClient, kind: str) -> None:
    client_id = await public_client(browser, kind)
    await consent_once(browser, client_id)
    browser.cookies.clear()  # the sign-in ended; the consent is still remembered
    login = (await browser.get("/authorize", params=attacker_params(client_id))).headers["location"]
    after_login = await sign_in(browser, login, *USER)
    assert after_login.status_code == 303
    assert urlsplit(after_login.headers["location"]).path == "/consent"
    page = await browser.get(after_login.headers["location"])
    assert "Continue to" in page.text


async def test_a_confidential_client_is_still_approved_without_a_page(browser: httpx2.AsyncClient) -> None:
    """The rule is exact: a client that authenticates at /token cannot be impersonated this way."""
    client_id = (await register(browser, token_endpoint_auth_method="client_secret_basic"))["client_id"]
    await consent_once(browser, client_id)
    again = await browser.get("/authorize", params=attacker_params(client_id))
    assert again.headers["location"].startswith(ATTACKER_REDIRECT)
    assert "code" in callback_dict(again.headers["location"])
