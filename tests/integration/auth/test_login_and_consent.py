"""The sign-in and consent pages (AZ-16..AZ-20, AZ-22, X-05), over HTTP."""

from __future__ import annotations

import json
import logging
import re
from urllib.parse import urlsplit

import httpx2
import pytest

from auth_server.users import hash_password
from shared.settings import Settings
from tests.integration.auth.conftest import HttpFactory, in_every_deployment
from tests.integration.auth.flow_helpers import (
    Pkce,
    authorize_params,
    callback_dict,
    decide,
    exchange_code,
    form_action,
    hidden_fields,
    is_client_redirect,
    new_pkce,
    register,
    run_flow,
    sign_in,
)
from tests.integration.auth.helpers import REDIRECT_URI, make_settings, public_deployment

PAGE_HEADERS = {
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


@pytest.fixture
async def client_id(http: httpx2.AsyncClient) -> str:
    value: str = (await register(http, client_name="Notes Desktop"))["client_id"]
    return value


@pytest.fixture
def pkce() -> Pkce:
    return new_pkce()


async def to_login(http: httpx2.AsyncClient, client_id: str, pkce: Pkce, **extra: str) -> str:
    response = await http.get("/authorize", params=authorize_params(client_id, pkce, **extra))
    assert response.status_code == 302
    location: str = response.headers["location"]
    assert urlsplit(location).path == "/login"
    return location


async def to_consent(http: httpx2.AsyncClient, client_id: str, pkce: Pkce, **extra: str) -> str:
    login = await sign_in(http, await to_login(http, client_id, pkce, **extra))
    assert login.status_code == 303
    location: str = login.headers["location"]
    assert urlsplit(location).path == "/consent"
    return location


def assert_page_headers(response: httpx2.Response) -> None:
    for name, value in PAGE_HEADERS.items():
        assert response.headers[name] == value, name
    policy = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy
    assert "script-src" not in policy  # default-src 'none' covers scripts: none at all


# -- sign-in ----------------------------------------------------------------------------------


async def test_the_login_page_has_the_username_and_password_fields_and_a_csrf_token(
    http: httpx2.AsyncClient, client_id: str, pkce: Pkce
) -> None:
    page = await http.get(await to_login(http, client_id, pkce))
    assert page.status_code == 200
    assert_page_headers(page)
    assert 'name="username"' in page.text
    assert 'name="password"' in page.text
    assert "Notes Desktop" in page.text
    fields = hidden_fields(page.text)
    assert len(fields["csrf"]) >= 43
    assert fields["request"]


async def test_a_wrong_password_returns_to_the_login_page_with_303_and_a_message(
    http: httpx2.AsyncClient, client_id: str, pkce: Pkce
) -> None:
    response = await sign_in(http, await to_login(http, client_id, pkce), password="wrong")
    assert response.status_code == 303  # AZ-20
    assert urlsplit(response.headers["location"]).path == "/login"
    page = await http.get(response.headers["location"])
    assert "wrong" in page.text
    retry = await sign_in(http, response.headers["location"])
    assert retry.status_code == 303
    assert urlsplit(retry.headers["location"]).path == "/consent"


async def test_an_unknown_user_gets_the_same_answer_as_a_wrong_password(
    http: httpx2.AsyncClient, client_id: str, pkce: Pkce
) -> None:
    wrong = await sign_in(http, await to_login(http, client_id, pkce), password="wrong")
    unknown = await sign_in(http, await to_login(http, client_id, pkce), username="nobody")
    assert (wrong.status_code, urlsplit(wrong.headers["location"]).query.endswith("failed=1")) == (
        unknown.status_code,
        urlsplit(unknown.headers["location"]).query.endswith("failed=1"),
    )


async def test_configured_users_sign_in_with_their_hashed_password_and_demo_is_gone(
    make_http: HttpFactory, pkce: Pkce
) -> None:
    http = await make_http(auth_users={"alice": hash_password("correct horse")})
    client_id = (await register(http))["client_id"]
    demo = await sign_in(http, await to_login(http, client_id, pkce))
    assert "failed=1" in demo.headers["location"]
    alice = await sign_in(
        http, await to_login(http, client_id, pkce), username="alice", password="correct horse"
    )
    assert urlsplit(alice.headers["location"]).path == "/consent"


async def test_signing_in_replaces_the_session_cookie_with_a_hardened_one(
    http: httpx2.AsyncClient, client_id: str, pkce: Pkce
) -> None:
    first = await http.get("/authorize", params=authorize_params(client_id, pkce))
    before = first.headers["set-cookie"]
    login = await sign_in(http, first.headers["location"])
    after = login.headers["set-cookie"]
    for cookie in (before, after):
        assert "HttpOnly" in cookie
        assert "samesite=lax" in cookie.lower()
        assert "Path=/" in cookie
    assert before.split(";")[0] != after.split(";")[0]  # a new id after sign-in (no fixation)


async def test_an_https_issuer_uses_a_host_prefixed_secure_cookie(make_http: HttpFactory, pkce: Pkce) -> None:
    http = await make_http(auth_issuer_url="https://as.example.com", **public_deployment())
    client_id = (await register(http))["client_id"]
    response = await http.get("/authorize", params=authorize_params(client_id, pkce))
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("__Host-")
    assert "Secure" in cookie
    assert "Domain" not in cookie


async def test_a_signed_in_browser_is_not_asked_to_sign_in_again(
    http: httpx2.AsyncClient, client_id: str, pkce: Pkce
) -> None:
    await run_flow(http, authorize_params(client_id, pkce, scope="notes:read"))
    again = await http.get("/authorize", params=authorize_params(client_id, pkce, scope="notes:write"))
    assert urlsplit(again.headers["location"]).path == "/consent"


async def test_sign_in_is_rate_limited_with_retry_after(make_http: HttpFactory, pkce: Pkce) -> None:
    http = await make_http(rate_limit_per_minute=3)
    client_id = (await register(http))["client_id"]
    login = await to_login(http, client_id, pkce)
    statuses = [(await sign_in(http, login, password="wrong")).status_code for _ in range(3)]
    assert statuses == [303, 303, 303]
    limited = await sign_in(http, login, password="demo")  # even the right password now waits
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert "location" not in limited.headers


async def test_sign_in_outcomes_are_audited_without_the_password(
    http: httpx2.AsyncClient, client_id: str, pkce: Pkce, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    login = await to_login(http, client_id, pkce)
    await sign_in(http, login, password="Wr0ng-Pa55word")
    await sign_in(http, login, username="Typed-My-Pa55word-Here", password="x")
    response = await run_flow(http, authorize_params(client_id, pkce))
    code = callback_dict(response.headers["location"])["code"]
    audit = [json.loads(r.getMessage()) for r in caplog.records if r.name == "auth_server.audit"]
    events = [line["event"] for line in audit]
    assert events.count("login_failed") == 2
    assert "login_succeeded" in events
    assert "consent_granted" in events
    everything = "\n".join(r.getMessage() for r in caplog.records)
    for secret in ("Wr0ng-Pa55word", "Typed-My-Pa55word-Here", code):
        assert secret not in everything


# -- consent ----------------------------------------------------------------------------------


async def test_the_consent_page_names_the_client_the_redirect_host_and_the_scopes_in_words(
    http: httpx2.AsyncClient, client_id: str, pkce: Pkce
) -> None:
    page = await http.get(await to_consent(http, client_id, pkce, scope="notes:write mcp:tools:read"))
    assert page.status_code == 200
    assert_page_headers(page)  # AZ-18
    assert "Notes Desktop" in page.text  # AZ-17
    assert client_id in page.text
    assert urlsplit(REDIRECT_URI).netloc in page.text
    assert "Add and delete your notes" in page.text
    assert "See the server&#39;s tools" in page.text
    assert "localhost" in page.text  # loopback-only client: the warning


async def test_a_client_with_an_https_redirect_gets_no_localhost_warning_and_shows_its_host(
    http: httpx2.AsyncClient, pkce: Pkce
) -> None:
    client = await register(http, redirect_uris=["https://app.example/cb"], application_type="web")
    page = await http.get(
        await to_consent(http, client["client_id"], pkce, redirect_uri="https://app.example/cb")
    )
    assert "app.example" in page.text
    assert "own computer" not in page.text


@in_every_deployment
async def test_approving_redirects_with_303_a_code_the_state_and_iss(
    http: httpx2.AsyncClient, client_id: str, pkce: Pkce, settings: Settings
) -> None:
    response = await decide(http, await to_consent(http, client_id, pkce))
    assert response.status_code == 303  # AZ-20
    assert is_client_redirect(response)
    params = callback_dict(response.headers["location"])
    assert params["state"] == "state-123"
    assert params["iss"] == settings.issuer
    token = await exchange_code(http, params["code"], client_id, pkce)
    assert token.status_code == 200, token.text


async def test_denying_redirects_access_denied_with_the_state_and_iss(
    http: httpx2.AsyncClient, client_id: str, pkce: Pkce, settings: Settings
) -> None:
    state = "ünïcode state %20 <&>"
    response = await decide(http, await to_consent(http, client_id, pkce, state=state), "deny")
    assert response.status_code == 303
    params = callback_dict(response.headers["location"])
    assert params["error"] == "access_denied"
    assert params["state"] == state
    assert params["iss"] == settings.issuer
    assert "code" not in params


async def test_a_public_client_redeems_its_code_only_with_the_verifier(
    http: httpx2.AsyncClient, client_id: str, pkce: Pkce
) -> None:
    response = await run_flow(http, authorize_params(client_id, pkce))
    code = callback_dict(response.headers["location"])["code"]
    wrong = await exchange_code(http, code, client_id, new_pkce())
    assert wrong.status_code == 400  # DR-03: PKCE is what protects a public client
    assert wrong.json()["error"] == "invalid_grant"


# -- CSRF and binding (AZ-19) -----------------------------------------------------------------------


async def test_a_consent_post_without_its_csrf_token_is_rejected(
    http: httpx2.AsyncClient, client_id: str, pkce: Pkce
) -> None:
    page = await http.get(await to_consent(http, client_id, pkce))
    fields = hidden_fields(page.text)
    response = await http.post(
        form_action(page.text), data={"request": fields["request"], "decision": "approve"}
    )
    assert response.status_code == 400
    assert "location" not in response.headers
    forged = await http.post(
        form_action(page.text), data={"request": fields["request"], "csrf": "x" * 43, "decision": "approve"}
    )
    assert forged.status_code == 400


async def test_a_consent_post_from_another_browser_is_rejected(
    make_http: HttpFactory, client_id: str, pkce: Pkce, http: httpx2.AsyncClient
) -> None:
    page = await http.get(await to_consent(http, client_id, pkce))
    attacker = await make_http()  # same server and store, its own cookies
    await run_flow(attacker, authorize_params(client_id, pkce))  # even signed in itself
    response = await attacker.post(
        form_action(page.text), data={**hidden_fields(page.text), "decision": "approve"}
    )
    assert response.status_code == 400
    assert "location" not in response.headers


async def test_a_login_post_without_the_csrf_token_is_rejected(
    http: httpx2.AsyncClient, client_id: str, pkce: Pkce
) -> None:
    page = await http.get(await to_login(http, client_id, pkce))
    fields = hidden_fields(page.text)
    response = await http.post(
        "/login", data={"request": fields["request"], "username": "demo", "password": "demo"}
    )
    assert response.status_code == 400


async def test_a_consent_post_cannot_be_replayed(
    http: httpx2.AsyncClient, client_id: str, pkce: Pkce
) -> None:
    page = await http.get(await to_consent(http, client_id, pkce))
    form = {**hidden_fields(page.text), "decision": "approve"}
    first = await http.post(form_action(page.text), data=form)
    again = await http.post(form_action(page.text), data=form)
    assert first.status_code == 303
    assert again.status_code == 400


async def test_only_the_latest_pages_csrf_token_works(
    http: httpx2.AsyncClient, client_id: str, pkce: Pkce
) -> None:
    location = await to_consent(http, client_id, pkce)
    old = hidden_fields((await http.get(location)).text)
    new = hidden_fields((await http.get(location)).text)
    assert old["csrf"] != new["csrf"]
    assert (await http.post("/consent", data={**old, "decision": "approve"})).status_code == 400
    assert (await http.post("/consent", data={**new, "decision": "approve"})).status_code == 303


async def test_a_tampered_or_unknown_request_id_is_an_error_page(http: httpx2.AsyncClient) -> None:
    for path in ("/login?request=nope", "/consent?request=nope", "/login", "/consent?request=" + "x" * 5000):
        response = await http.get(path)
        assert response.status_code == 400, path
        assert_page_headers(response)


@pytest.mark.parametrize("body", [b"request=a&request=b", b"\xff\xfe", b"decision=maybe"])
async def test_malformed_form_posts_are_error_pages_not_500s(http: httpx2.AsyncClient, body: bytes) -> None:
    for path in ("/login", "/consent"):
        response = await http.post(
            path, content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert response.status_code == 400, (path, response.text)


async def test_a_form_post_with_another_content_type_is_rejected(http: httpx2.AsyncClient) -> None:
    response = await http.post("/consent", json={"decision": "approve"})
    assert response.status_code == 400


# -- remembered consent (AZ-22) -------------------------------------------------------------------


async def test_consent_is_remembered_for_the_same_confidential_client_and_scopes(
    http: httpx2.AsyncClient, pkce: Pkce, settings: Settings
) -> None:
    client_id = (await register(http, token_endpoint_auth_method="client_secret_basic"))["client_id"]
    await run_flow(http, authorize_params(client_id, pkce, scope="notes:read"))
    again = await http.get("/authorize", params=authorize_params(client_id, pkce, scope="notes:read"))
    assert again.status_code == 302
    assert is_client_redirect(again)
    params = callback_dict(again.headers["location"])
    assert params["code"]
    assert params["iss"] == settings.issuer


async def test_a_remembered_consent_for_a_public_client_still_shows_the_continue_page(
    http: httpx2.AsyncClient, client_id: str, pkce: Pkce
) -> None:
    # RFC 8252 section 8.6; the attack itself is tests/security/test_silent_authorization.py
    await run_flow(http, authorize_params(client_id, pkce, scope="notes:read"))
    again = await http.get("/authorize", params=authorize_params(client_id, pkce, scope="notes:read"))
    assert urlsplit(again.headers["location"]).path == "/consent"
    page = await http.get(again.headers["location"])
    assert "Continue to" in page.text
    assert "Read your notes" not in page.text  # nothing new to decide: no scope list


async def test_a_new_scope_asks_again_and_marks_what_is_new(
    http: httpx2.AsyncClient, client_id: str, pkce: Pkce
) -> None:
    await run_flow(http, authorize_params(client_id, pkce, scope="notes:read"))
    again = await http.get(
        "/authorize", params=authorize_params(client_id, pkce, scope="notes:read notes:write")
    )
    assert urlsplit(again.headers["location"]).path == "/consent"
    page = await http.get(again.headers["location"])
    assert re.search(r"Add and delete your notes.*?new", page.text, re.S)
    assert not re.search(r"Read your notes <code>notes:read</code><span", page.text)


async def test_consenting_to_one_client_never_approves_another(http: httpx2.AsyncClient, pkce: Pkce) -> None:
    first = (await register(http, client_name="A"))["client_id"]
    second = (await register(http, client_name="B"))["client_id"]
    await run_flow(http, authorize_params(first, pkce, scope="notes:read"))
    other = await http.get("/authorize", params=authorize_params(second, pkce, scope="notes:read"))
    assert urlsplit(other.headers["location"]).path == "/consent"


async def test_a_denial_is_not_remembered(http: httpx2.AsyncClient, client_id: str, pkce: Pkce) -> None:
    await run_flow(http, authorize_params(client_id, pkce), decision="deny")
    again = await http.get("/authorize", params=authorize_params(client_id, pkce))
    assert urlsplit(again.headers["location"]).path == "/consent"


async def test_another_user_is_asked_for_their_own_consent(make_http: HttpFactory, pkce: Pkce) -> None:
    users = {"alice": hash_password("a-password"), "bob": hash_password("b-password")}
    alice = await make_http(auth_users=users)
    client_id = (await register(alice))["client_id"]
    await run_flow(alice, authorize_params(client_id, pkce), username="alice", password="a-password")
    bob = await make_http(auth_users=users)
    login = await to_login(bob, client_id, pkce)
    response = await sign_in(bob, login, username="bob", password="b-password")
    assert urlsplit(response.headers["location"]).path == "/consent"


async def test_bad_configured_users_stop_start_up_with_a_clear_message() -> None:
    from auth_server.users import UserDirectory

    with pytest.raises(ValueError, match="alice"):
        UserDirectory.from_settings(make_settings(auth_users={"alice": "plaintext"}))
