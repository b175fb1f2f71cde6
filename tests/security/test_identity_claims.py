"""Identity is never guessed (issue 9, item 8), against a real third-party provider.

The attack, as found at 8e585b0: an introspection answer without the subject claim
(TOKEN_SUBJECT_CLAIM) made the MCP server take the token's client_id as the user, so two users of
one app became one principal and shared one notebook, and a provider's machine token (client
credentials: no `sub`) passed as a "user" named after the client.

The provider is oidc-provider (certified, tests/idp), issuing opaque tokens that our MCP server
(external mode, `python -m mcp_server` alone, as `make dev-mcp` runs it) introspects. Its
introspection answers carry `sub` for users, but no `email`, and no `sub` for machine tokens:
real answers without the subject claim. Our own authorization server's machine tokens carry
`client:<client_id>` and keep working in external mode (tests/security/test_token_issuance.py).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import httpx2
import pytest

from tests.e2e.login_driver import authorize
from tests.e2e.oauth_flow import Discovery, authorization_url, exchange_code, pkce_pair, register
from tests.e2e.servers import Deployment, free_port
from tests.idp.conftest import mcp_server_alone
from tests.idp.flows import REDIRECT_URI
from tests.idp.provider import IdentityProvider, start_provider
from tests.resilience.cluster import modern_call, rpc_result, structured

RS_CLIENT = "mcp-server-introspection"
MACHINE_CLIENT = "provider-machine"
ALICE = ("alice", "alice-password")
BOB = ("bob", "bob-password")


@dataclass
class Setup:
    idp: IdentityProvider
    by_sub: Deployment  # TOKEN_SUBJECT_CLAIM=sub (the default)
    by_email: Deployment  # TOKEN_SUBJECT_CLAIM=email, a claim the provider's introspection lacks
    machine_secret: str


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("identity-claims")
    idp_port = free_port()
    issuer = f"http://127.0.0.1:{idp_port}"
    rs_secret, machine_secret = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    common = {
        "AUTH_SERVER_URL": issuer,
        "TOKEN_FORMAT": "opaque",
        "INTROSPECTION_CLIENT_ID": RS_CLIENT,
        "INTROSPECTION_CLIENT_SECRET": rs_secret,
    }
    by_sub = mcp_server_alone(root / "by-sub", common)
    by_email = mcp_server_alone(root / "by-email", {**common, "TOKEN_SUBJECT_CLAIM": "email"})
    idp = start_provider(
        root / "provider",
        idp_port,
        resources={d.mcp_url: {"format": "opaque", "ttl": 600} for d in (by_sub, by_email)},
        clients=[
            {
                "client_id": RS_CLIENT,
                "client_secret": rs_secret,
                "grant_types": [],
                "response_types": [],
                "redirect_uris": [],
                "token_endpoint_auth_method": "client_secret_basic",
            },
            {
                "client_id": MACHINE_CLIENT,
                "client_secret": machine_secret,
                "grant_types": ["client_credentials"],
                "response_types": [],
                "redirect_uris": [],
                "token_endpoint_auth_method": "client_secret_basic",
            },
        ],
    )
    try:
        by_sub.start()
        by_email.start()
        yield Setup(idp, by_sub, by_email, machine_secret)
    finally:
        by_email.stop()
        by_sub.stop()
        idp.stop()


def call_tool(deployment: Deployment, token: str, tool: str, **arguments: str) -> httpx2.Response:
    body, headers = modern_call(tool, arguments, token)
    with httpx2.Client(timeout=15.0, trust_env=False) as client:
        return client.post(deployment.mcp_url, json=body, headers=headers)


def assert_invalid_token(response: httpx2.Response) -> None:
    assert response.status_code == 401, response.text
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def user_tokens(setup: Setup, deployment: Deployment, *users: tuple[str, str]) -> list[str]:
    """Each user's token from ONE app (one client registered at the provider, its own login)."""
    discovery = Discovery(prm={}, metadata=setup.idp.metadata())
    app = register(discovery, REDIRECT_URI, name="one app, several users")
    tokens = []
    for username, password in users:
        verifier, challenge = pkce_pair()
        url = authorization_url(
            discovery,
            app.client_id,
            REDIRECT_URI,
            scope="mcp:tools:read notes:write",
            resource=deployment.mcp_url,
            state="s",
            challenge=challenge,
        )
        result = authorize(url, username=username, password=password)
        assert result.code, result.redirect_url
        tokens.append(exchange_code(discovery, app, result.code, verifier, deployment.mcp_url).access_token)
    return tokens


def test_a_provider_machine_token_without_a_subject_is_not_taken_for_its_client(setup: Setup) -> None:
    token_endpoint = setup.idp.metadata()["token_endpoint"]
    with httpx2.Client(timeout=15.0, trust_env=False) as client:
        issued = client.post(
            token_endpoint,
            data={
                "grant_type": "client_credentials",
                "resource": setup.by_sub.mcp_url,
                "scope": "mcp:tools:read",
            },
            auth=httpx2.BasicAuth(MACHINE_CLIENT, setup.machine_secret),
        )
        assert issued.status_code == 200, issued.text
        machine = issued.json()["access_token"]
        # The provider vouches for the token: active, for our resource, but names no subject.
        answer = client.post(
            setup.idp.metadata()["introspection_endpoint"],
            data={"token": machine},
            auth=httpx2.BasicAuth(RS_CLIENT, setup.by_sub.env["INTROSPECTION_CLIENT_SECRET"]),
        ).json()
    assert answer["active"] is True
    assert answer["client_id"] == MACHINE_CLIENT
    assert "sub" not in answer
    assert_invalid_token(call_tool(setup.by_sub, machine, "whoami"))
    # The same server takes the provider's user tokens (the setup works; only the guess is gone).
    [alice] = user_tokens(setup, setup.by_sub, ALICE)
    identity = structured(rpc_result(call_tool(setup.by_sub, alice, "whoami")))
    assert identity["subject"] == "alice"


def test_two_users_of_one_app_never_become_one_principal_when_the_subject_claim_is_missing(
    setup: Setup,
) -> None:
    alice, bob = user_tokens(setup, setup.by_email, ALICE, BOB)
    for token in (alice, bob):
        assert_invalid_token(call_tool(setup.by_email, token, "notes_add", text="shared?"))
        assert_invalid_token(call_tool(setup.by_email, token, "notes_list"))
