"""The account page (every app a user authorized, revoking one at once) and logout, over HTTP
(internal mode on Redis; the revocations that race a consent in flight in every deployment)."""

from __future__ import annotations

import json
import logging
import time

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from auth_server import crypto
from auth_server.audit import AuditLog
from auth_server.authorized_apps import AuthorizedApps
from auth_server.grants.index import MAX_GRANTS_PER_APP
from shared.storage.base import Store
from tests.fixtures.local_server import LocalServer
from tests.integration.auth.account_helpers import (
    PASSWORD,
    approved_code,
    authorize_app,
    listed_apps,
    log_out,
    revoke,
    sign_in_to_account,
    users,
)
from tests.integration.auth.conftest import HttpFactory, in_every_deployment
from tests.integration.auth.flow_helpers import (
    authorize_params,
    exchange_code,
    hidden_fields,
    new_pkce,
    register,
)
from tests.integration.auth.helpers import REDIRECT_URI, OAuthClient, is_active, refresh

# Every test signs in as the same users and lists all their apps: each gets a Store of its own.
STORE_PER_TEST = True

PAGE_HEADERS = {"x-frame-options": "DENY", "cache-control": "no-store", "referrer-policy": "no-referrer"}


def assert_page_headers(response: httpx2.Response) -> None:
    for name, value in PAGE_HEADERS.items():
        assert response.headers[name] == value, name
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


# -- the list --------------------------------------------------------------------------------


async def test_the_account_page_lists_each_app_with_its_name_verification_redirect_host_scopes_and_last_use(
    http: httpx2.AsyncClient,
) -> None:
    before = int(time.time())
    app = await authorize_app(http, client_name="Notes <Desktop>")
    page = await http.get("/account")
    assert page.status_code == 200
    assert_page_headers(page)
    text = page.text
    assert "Notes &lt;Desktop&gt;" in text  # escaped, never markup
    assert "unverified name" in text  # a registered client chose its own name
    assert "127.0.0.1:53124" in text  # the parsed redirect host
    assert "Read your notes" in text
    assert "notes:read" in text
    shown = [time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t)) for t in (before, int(time.time()))]
    assert any(stamp in text for stamp in shown)
    assert await listed_apps(http) == [app.client_id]


async def test_configured_and_metadata_document_apps_are_labelled_as_on_the_consent_page(
    make_http: HttpFactory,
) -> None:
    configured = {
        "client_id": "reporting-desk",
        "client_name": "Reporting Desk",
        "redirect_uris": [REDIRECT_URI],
    }
    http = await make_http(auth_clients=[configured])
    documents = LocalServer.reserve()
    fetches: list[str] = []

    async def document(request: Request) -> JSONResponse:
        fetches.append(request.url.path)
        body = {
            "client_id": f"{documents.url}{request.url.path}",
            "client_name": "Fixture Client",
            "redirect_uris": [REDIRECT_URI],
            "token_endpoint_auth_method": "none",
        }
        cache = "max-age=60" if request.url.path == "/cached.json" else "no-store"
        return JSONResponse(body, headers={"Cache-Control": cache})

    await documents.start(Starlette(routes=[Route("/{name}.json", document)]))
    try:
        await authorize_app(http, client_id="reporting-desk")
        await authorize_app(http, client_id=f"{documents.url}/cached.json")
        await authorize_app(http, client_id=f"{documents.url}/uncached.json")
        fetched_before = len(fetches)
        page = (await http.get("/account")).text
        assert len(fetches) == fetched_before  # listing apps fetches no document
    finally:
        await documents.stop()
    sections = {name: page[page.index(name) :] for name in ("Reporting Desk", "Fixture Client")}
    assert "unverified name" not in sections["Reporting Desk"].split("</section>")[0]  # the operator's
    fixture = sections["Fixture Client"].split("</section>")[0]
    assert "unverified name" in fixture  # a document names itself...
    assert (
        f'identifies itself as <span class="mono">127.0.0.1:{documents.port}</span>' in fixture
    )  # ...at its host
    # A document no longer cached is not fetched for the list: its URL names it, its host vouches.
    uncached = page[page.index(f"<strong>{documents.url}/uncached.json") :].split("</section>")[0]
    assert "Fixture Client" not in uncached
    assert f'identifies itself as <span class="mono">127.0.0.1:{documents.port}</span>' in uncached


async def test_the_account_page_shows_no_token_code_digest_or_grant_id(
    http: httpx2.AsyncClient, store: Store
) -> None:
    app = await authorize_app(http)
    text = (await http.get("/account")).text
    secrets_ = [app.access_token, app.refresh_token]
    for secret in secrets_:
        assert secret not in text
        assert crypto.digest(secret) not in text
    grant_ids = await store.index_members(
        f"auth:app-grants:{crypto.digest('demo')}:{crypto.digest(app.client_id)}"
    )
    assert len(grant_ids) == 1
    assert next(iter(grant_ids)) not in text


async def test_apps_are_listed_most_recently_used_first_and_a_refresh_counts_as_use(
    http: httpx2.AsyncClient,
) -> None:
    first = await authorize_app(http, client_name="First")
    second = await authorize_app(http, client_name="Second")
    assert await listed_apps(http) == [second.client_id, first.client_id]
    response = await refresh(http, first.refresh_token, OAuthClient(first.client_id))
    assert response.status_code == 200, response.text
    assert await listed_apps(http) == [first.client_id, second.client_id]


async def test_a_client_authorized_twice_is_one_app_holding_two_grants(http: httpx2.AsyncClient) -> None:
    app = await authorize_app(http)
    again = await authorize_app(http, client_id=app.client_id)
    assert await listed_apps(http) == [app.client_id]
    assert "2 active" in (await http.get("/account")).text
    assert await is_active(http, app.access_token)
    assert await is_active(http, again.access_token)


async def test_each_user_sees_only_their_own_apps(make_http: HttpFactory) -> None:
    alice = await make_http(auth_users=users("alice", "bob"))
    bob = await make_http(auth_users=users("alice", "bob"))
    mine = await authorize_app(alice, username="alice", password=PASSWORD)
    theirs = await authorize_app(bob, username="bob", password=PASSWORD)
    assert await listed_apps(alice) == [mine.client_id]
    assert await listed_apps(bob) == [theirs.client_id]


# -- revoking --------------------------------------------------------------------------------


@pytest.mark.parametrize("token_format", ["opaque", "jwt"])
@in_every_deployment
async def test_revoking_an_app_ends_its_tokens_and_its_remembered_consent_at_once(
    make_http: HttpFactory, token_format: str
) -> None:
    http = await make_http(token_format=token_format)
    app = await authorize_app(http)
    again = await authorize_app(http, client_id=app.client_id)  # a second grant of the same app
    remembered = await http.get("/authorize", params=authorize_params(app.client_id, new_pkce()))
    assert "<title>Continue?</title>" in (await http.get(remembered.headers["location"])).text
    response = await revoke(http, app.client_id)
    assert response.status_code == 303
    assert response.headers["location"] == "/account?revoked=1"
    page = await http.get(response.headers["location"])
    assert "Access revoked" in page.text
    assert app.client_id not in page.text
    for token in (app.access_token, app.refresh_token, again.access_token, again.refresh_token):
        assert not await is_active(http, token)
    refreshed = await refresh(http, again.refresh_token, OAuthClient(app.client_id))
    assert refreshed.status_code == 400
    assert refreshed.json()["error"] == "invalid_grant"
    # The consent is forgotten: the next authorization asks the whole question again, not the
    # one-click "continue" of a remembered consent.
    asked = await http.get("/authorize", params=authorize_params(app.client_id, new_pkce()))
    assert asked.status_code == 302
    assert asked.headers["location"].startswith("/consent?")
    page = (await http.get(asked.headers["location"])).text
    assert "<title>Allow access?</title>" in page


async def test_revoking_one_app_leaves_the_users_other_apps_working(http: httpx2.AsyncClient) -> None:
    kept = await authorize_app(http, client_name="Kept")
    gone = await authorize_app(http, client_name="Gone")
    assert (await revoke(http, gone.client_id)).status_code == 303
    assert await listed_apps(http) == [kept.client_id]
    assert await is_active(http, kept.access_token)
    assert await is_active(http, kept.refresh_token)


async def test_revoking_an_app_for_one_user_leaves_another_users_grant_of_it_alone(
    make_http: HttpFactory,
) -> None:
    alice = await make_http(auth_users=users("alice", "bob"))
    bob = await make_http(auth_users=users("alice", "bob"))
    client_id = (await register(alice))["client_id"]
    alices = await authorize_app(alice, client_id=client_id, username="alice", password=PASSWORD)
    bobs = await authorize_app(bob, client_id=client_id, username="bob", password=PASSWORD)
    assert (await revoke(alice, client_id)).status_code == 303
    assert not await is_active(alice, alices.access_token)
    assert await is_active(bob, bobs.access_token)
    assert await listed_apps(bob) == [client_id]


async def test_the_per_client_index_names_every_user_of_an_app_until_they_revoke_it(
    make_http: HttpFactory, store: Store
) -> None:
    """What an admin surface lists as "grants by client" (issue 13) reads this index."""
    alice = await make_http(auth_users=users("alice", "bob"))
    bob = await make_http(auth_users=users("alice", "bob"))
    client_id = (await register(alice))["client_id"]
    await authorize_app(alice, client_id=client_id, username="alice", password=PASSWORD)
    bobs = await authorize_app(bob, client_id=client_id, username="bob", password=PASSWORD)
    apps = AuthorizedApps(store, AuditLog(enabled=False))
    assert await apps.users_of(client_id) == ["alice", "bob"]
    assert [grant.subject for grant in await apps.grants_of("bob", client_id)] == ["bob"]
    assert (await revoke(alice, client_id)).status_code == 303
    assert await apps.users_of(client_id) == ["bob"]
    assert await apps.grants_of("alice", client_id) == []
    assert await is_active(bob, bobs.refresh_token)


@in_every_deployment
async def test_a_code_approved_before_the_revocation_is_refused_after_it(http: httpx2.AsyncClient) -> None:
    app = await authorize_app(http)
    pkce = new_pkce()
    code = await approved_code(http, app.client_id, pkce)  # consent remembered: no page
    assert (await revoke(http, app.client_id)).status_code == 303
    response = await exchange_code(http, code, app.client_id, pkce)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert await listed_apps(http) == []


async def test_revoking_is_audited_with_the_user_the_app_and_what_ended(
    http: httpx2.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    app = await authorize_app(http)
    with caplog.at_level(logging.INFO, logger="auth_server.audit"):
        await revoke(http, app.client_id)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "auth_server.audit"]
    revoked = [line for line in lines if line["event"] == "app_revoked"]
    assert len(revoked) == 1
    assert revoked[0]["subject"] == "demo"
    assert revoked[0]["client_id"] == app.client_id
    assert revoked[0]["reason"] == "revoked by the user: 1 grants, 2 live tokens"
    for line in lines:
        assert app.access_token not in json.dumps(line)


async def test_an_app_over_the_grant_limit_loses_its_least_recently_used_grant(
    http: httpx2.AsyncClient,
) -> None:
    first = await authorize_app(http)
    later = [await authorize_app(http, client_id=first.client_id) for _ in range(MAX_GRANTS_PER_APP)]
    assert not await is_active(http, first.refresh_token)
    assert not await is_active(http, first.access_token)
    for app in later:
        assert await is_active(http, app.refresh_token)


# -- signing in and out ----------------------------------------------------------------------


async def test_the_signed_out_account_page_offers_a_sign_in_form_that_leads_back_to_the_list(
    http: httpx2.AsyncClient,
) -> None:
    app = await authorize_app(http)
    assert (await log_out(http)).status_code == 303
    page = await http.get("/account")
    assert page.status_code == 200
    assert_page_headers(page)
    assert 'name="password"' in page.text
    assert app.client_id not in page.text
    signed_in = await sign_in_to_account(http)
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/account"
    assert await listed_apps(http) == [app.client_id]


async def test_a_wrong_password_on_the_account_page_signs_nobody_in(http: httpx2.AsyncClient) -> None:
    response = await sign_in_to_account(http, password="wrong")
    assert response.status_code == 303
    assert response.headers["location"] == "/account?failed=1"
    page = await http.get(response.headers["location"])
    assert "wrong" in page.text
    assert 'name="password"' in page.text


async def test_the_logout_page_asks_first_and_a_get_signs_nobody_out(http: httpx2.AsyncClient) -> None:
    app = await authorize_app(http)
    page = await http.get("/logout")
    assert page.status_code == 200
    assert_page_headers(page)
    assert "Sign out?" in page.text
    assert hidden_fields(page.text)["csrf"]
    assert await listed_apps(http) == [app.client_id]  # still signed in


async def test_logging_out_ends_the_session_server_side_and_clears_the_cookie(
    http: httpx2.AsyncClient, make_http: HttpFactory
) -> None:
    app = await authorize_app(http)
    cookie_name, cookie = next(iter(http.cookies.items()))
    response = await log_out(http)
    assert response.status_code == 303
    assert response.headers["location"] == "/logout"
    set_cookie = response.headers["set-cookie"]
    assert set_cookie.startswith(f"{cookie_name}=")
    assert "Max-Age=0" in set_cookie
    assert "You are signed out" in (await http.get("/logout")).text
    # The old cookie, replayed by whoever kept a copy, signs nobody in any more.
    replay = await make_http()
    replay.cookies.set(cookie_name, cookie)
    assert 'name="password"' in (await replay.get("/account")).text
    back = await replay.get("/authorize", params=authorize_params(app.client_id, new_pkce()))
    assert back.headers["location"].startswith("/login?")
    # Apps keep their access: signing out is not revoking.
    assert await is_active(http, app.refresh_token)


async def test_the_consent_and_continue_pages_link_to_the_account_page_and_to_logout(
    http: httpx2.AsyncClient,
) -> None:
    client_id = (await register(http))["client_id"]
    assert (await sign_in_to_account(http)).status_code == 303
    for title in ("Allow access?", "Continue?"):  # first time; then remembered
        response = await http.get("/authorize", params=authorize_params(client_id, new_pkce()))
        assert response.headers["location"].startswith("/consent?")
        page = (await http.get(response.headers["location"])).text
        assert f"<title>{title}</title>" in page
        assert 'href="/account"' in page
        assert 'href="/logout"' in page
        await authorize_app(http, client_id=client_id)
