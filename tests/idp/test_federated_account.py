"""The account page and logout when users sign in at the third-party provider (UPSTREAM_OIDC_*).

Signing out of our authorization server ends our session only: the provider's own session is
the provider's business, and the signed-out page says so. Signing in to the account page goes
through the provider like any sign-in, and comes back to the account page.
"""

from __future__ import annotations

from urllib.parse import urljoin

import httpx2

from tests.e2e.login_driver import authorize
from tests.e2e.oauth_flow import exchange_code, initialize
from tests.idp.conftest import World
from tests.idp.test_federated_login import ALICE, browser, callback_base, start
from tests.integration.auth.account_helpers import revoke_forms
from tests.integration.auth.flow_helpers import hidden_fields


def test_a_federated_user_signs_out_signs_back_in_through_the_provider_and_revokes_an_app(
    world: World,
) -> None:
    base = world.federated.base_url
    with browser() as http:
        started = start(world)
        result = authorize(started.url, username=ALICE[0], password=ALICE[1], client=http)
        assert result.code
        tokens = exchange_code(
            started.discovery, started.client, result.code, started.verifier, world.federated.mcp_url
        )
        assert started.client.client_id in revoke_forms(http.get(base + "/account").text)

        # Sign out here: our session ends, the page points at the provider for its own.
        confirm = http.get(base + "/logout")
        assert http.post(base + "/logout", data=hidden_fields(confirm.text)).status_code == 303
        signed_out = http.get(base + "/logout").text
        assert "You are signed out" in signed_out
        assert world.idp.issuer in signed_out

        # Signed out, the account page offers the provider's sign-in (no password form of ours).
        page = http.get(base + "/account").text
        assert 'name="password"' not in page
        assert world.idp.issuer in page
        begin = http.post(base + "/account/login", data=hidden_fields(page))
        assert begin.status_code == 303
        upstream = begin.headers["location"]
        assert upstream.startswith(world.idp.issuer + "/")
        back = authorize(
            upstream, redirect_uri=callback_base(world), username=ALICE[0], password=ALICE[1], client=http
        )
        arrived = http.get(back.redirect_url)
        assert arrived.status_code == 303
        assert urljoin(base, arrived.headers["location"]) == base + "/account"

        # Signed in again as the same federated user: the app is there, and revoking it ends it.
        forms = revoke_forms(http.get(base + "/account").text)
        client_id = started.client.client_id
        assert client_id in forms
        revoked = http.post(base + "/account/revoke", data={"csrf": forms[client_id], "client_id": client_id})
        assert revoked.status_code == 303
    assert initialize(world.federated.mcp_url, tokens.access_token).status_code == 401
    with httpx2.Client(timeout=15.0, trust_env=False) as client:
        refused = client.post(
            started.discovery.metadata["token_endpoint"],
            data={
                "grant_type": "refresh_token",
                "refresh_token": tokens.refresh_token,
                "client_id": client_id,
            },
        )
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"


def test_the_account_sign_in_button_without_its_cookie_starts_nothing(world: World) -> None:
    base = world.federated.base_url
    with browser() as http, browser() as attacker:
        page = http.get(base + "/account").text
        response = attacker.post(base + "/account/login", data=hidden_fields(page))
    assert response.status_code == 403
    assert "location" not in response.headers
