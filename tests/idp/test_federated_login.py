"""Federated login: our authorization server signs its users in at the third-party provider.

MCP clients register with us and get codes and tokens from us; the provider only says who the
user is. The SDK client runs the whole thing; the rest drives the browser side by hand to check
what X-06 and "no confused deputy" ask: the upstream `state` is exact, single use and bound to
the browser, the `nonce` and PKCE are really checked, and our per-client consent is asked even
when the provider signs the user in without showing a page.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit, urlunsplit

import httpx2
import pytest

from auth_server.upstream import UpstreamProvider, UpstreamUnavailable
from shared.settings import Settings
from shared.storage.memory import MemoryStore
from tests.e2e.login_driver import AuthorizationResponse, authorize
from tests.e2e.oauth_flow import (
    Discovery,
    RegisteredClient,
    authorization_url,
    discover,
    exchange_code,
    initialize,
    pkce_pair,
    register,
)
from tests.e2e.sdk_client import REVISIONS, HeadlessUser, Revision, make_sdk_client, structured
from tests.e2e.servers import free_port
from tests.idp.conftest import FEDERATED_CLIENT_ID, World
from tests.idp.flows import MCP_SCOPE

REDIRECT_URI = "http://127.0.0.1:9/callback"
ALICE = ("alice", "alice-password")
SESSION_COOKIE = "mcp_as_session"


def browser() -> httpx2.Client:
    return httpx2.Client(timeout=15.0, trust_env=False, follow_redirects=False)


@dataclass
class Started:
    discovery: Discovery
    client: RegisteredClient
    verifier: str
    url: str  # our /authorize URL


def start(world: World) -> Started:
    """A new MCP client of our authorization server, and its authorization request."""
    discovery = discover(world.federated.mcp_url)
    client = register(discovery, REDIRECT_URI, name=f"federated test client {secrets.token_hex(3)}")
    verifier, challenge = pkce_pair()
    url = authorization_url(
        discovery,
        client.client_id,
        REDIRECT_URI,
        scope=MCP_SCOPE,
        resource=world.federated.mcp_url,
        state=secrets.token_urlsafe(16),
        challenge=challenge,
    )
    return Started(discovery, client, verifier, url)


def upstream_authorization_url(http: httpx2.Client, our_url: str, idp_issuer: str) -> str:
    """Follow our redirects (authorize -> login) up to the provider's authorization URL."""
    url = our_url
    for _ in range(5):
        response = http.get(url)
        assert response.is_redirect, f"{url} -> {response.status_code}: {response.text[:300]}"
        url = urljoin(url, response.headers["location"])
        if url.startswith(idp_issuer + "/"):
            return url
    raise AssertionError("never sent to the provider")


def with_param(url: str, name: str, value: str | None) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    if value is None:
        query.pop(name, None)
    else:
        query[name] = value
    return urlunsplit(parts._replace(query=urlencode(query)))


def callback_base(world: World) -> str:
    return world.federated.base_url + "/login/callback"


def to_our_callback(http: httpx2.Client, upstream_url: str, world: World) -> AuthorizationResponse:
    """Sign in (and consent) at the provider; stop where it sends the browser back to us."""
    return authorize(
        upstream_url, redirect_uri=callback_base(world), username=ALICE[0], password=ALICE[1], client=http
    )


def assert_rejected(response: httpx2.Response) -> None:
    assert response.status_code == 400, f"{response.status_code}: {response.text[:300]}"
    assert "location" not in response.headers
    assert "not valid" in response.text


# --- the SDK client, end to end ----------------------------------------------------------------------
@pytest.mark.parametrize("revision", REVISIONS)
async def test_the_sdk_client_gets_our_token_for_a_user_who_signed_in_at_the_provider(
    world: World, revision: Revision
) -> None:
    sdk = make_sdk_client(world.federated.mcp_url, HeadlessUser(*ALICE))
    async with sdk.connect(revision) as client:
        identity = structured(await client.call_tool("whoami", {}))

    # The user is the provider's `alice`, namespaced by its issuer; the token is ours.
    assert identity["subject"] == f"{world.idp.issuer}#alice"
    assert identity["issuer"] == world.federated.issuer
    assert identity["audience"] == [world.federated.mcp_url]
    last = sdk.user.responses[-1]
    assert last.iss == world.federated.issuer
    assert last.saw_login, "the user signed in at the provider"
    assert last.saw_consent, "and consented at our server"
    assert any(step.startswith(f"GET {world.idp.issuer}/auth?") for step in last.visited)
    # Registration and tokens at our server; the provider never saw the MCP client.
    assert sdk.traffic.statuses_for(world.federated.base_url + "/register") == [201]
    assert sdk.traffic.statuses_for(world.federated.base_url + "/token") == [200]
    assert not sdk.traffic.statuses_for(world.idp.issuer)


def test_the_upstream_request_is_an_openid_code_flow_with_pkce_state_and_nonce(world: World) -> None:
    with browser() as http:
        upstream = upstream_authorization_url(http, start(world).url, world.idp.issuer)
    query = {k: v[0] for k, v in parse_qs(urlsplit(upstream).query).items()}
    assert query["client_id"] == FEDERATED_CLIENT_ID
    assert query["redirect_uri"] == callback_base(world)
    assert query["response_type"] == "code"
    assert query["scope"].split() == ["openid", "email", "profile"]
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43
    assert len(query["state"]) >= 43, "256 random bits"
    assert len(query["nonce"]) >= 43
    assert "resource" not in query, "the MCP client's resource is ours, not the provider's"


def test_no_upstream_state_without_a_pending_authorization_of_this_browser(world: World) -> None:
    with browser() as http:
        response = http.get(world.federated.base_url + "/login?request=made-up")
    assert response.status_code == 400
    assert "location" not in response.headers


# --- the upstream state ---------------------------------------------------------------------------
def test_the_callback_rejects_a_missing_a_wrong_a_foreign_and_a_replayed_state(world: World) -> None:
    started = start(world)
    with browser() as http, browser() as stranger:
        upstream = upstream_authorization_url(http, started.url, world.idp.issuer)
        back = to_our_callback(http, upstream, world)
        assert back.code
        assert back.state == parse_qs(urlsplit(upstream).query)["state"][0], "exact echo"
        callback = back.redirect_url

        assert_rejected(http.get(with_param(callback, "state", None)))
        assert_rejected(http.get(with_param(callback, "state", secrets.token_urlsafe(32))))
        assert_rejected(http.get(callback + "&state=" + (back.state or "")))  # state twice
        assert_rejected(stranger.get(callback))  # the state belongs to another browser

        # None of that used the state up: the real browser still completes, exactly once.
        accepted = http.get(callback)
        assert accepted.status_code in (302, 303), accepted.text[:300]
        assert "/consent?request=" in accepted.headers["location"]
        assert_rejected(http.get(callback))


def test_a_nonce_the_provider_did_not_get_from_us_fails_the_sign_in(world: World) -> None:
    with browser() as http:
        upstream = upstream_authorization_url(http, start(world).url, world.idp.issuer)
        back = to_our_callback(http, with_param(upstream, "nonce", secrets.token_urlsafe(32)), world)
        response = http.get(back.redirect_url)
    assert response.status_code == 400
    assert "Sign-in failed" in response.text


def test_a_code_challenge_that_is_not_ours_fails_the_code_exchange(world: World) -> None:
    _, forged_challenge = pkce_pair()
    with browser() as http:
        upstream = upstream_authorization_url(http, start(world).url, world.idp.issuer)
        back = to_our_callback(http, with_param(upstream, "code_challenge", forged_challenge), world)
        response = http.get(back.redirect_url)
    assert response.status_code == 400
    assert "Sign-in failed" in response.text


def test_denying_at_the_provider_ends_the_request_with_access_denied_to_the_mcp_client(world: World) -> None:
    with browser() as http:
        result = authorize(start(world).url, username=ALICE[0], password=ALICE[1], approve=False, client=http)
    assert result.error == "access_denied"
    assert result.iss == world.federated.issuer
    assert result.code is None


# --- consent stays ours, per client (no confused deputy) --------------------------------------------
def test_a_silent_sign_in_at_the_provider_still_needs_our_consent_for_each_new_client(world: World) -> None:
    with browser() as http:
        first = start(world)
        signed_in = authorize(first.url, username=ALICE[0], password=ALICE[1], client=http)
        assert signed_in.saw_login
        assert signed_in.saw_consent
        assert signed_in.code

        # Our session is gone, the provider's is not: it signs alice in without a page. A client
        # she never approved must still get our consent page, not a code.
        http.cookies.delete(SESSION_COOKIE)
        second = start(world)
        asked = authorize(second.url, username="-", password="-", client=http)
        assert not asked.saw_login, "the provider signed the user in silently"
        assert asked.saw_consent, "our consent page was shown for the new client"
        assert asked.code

        # The client she did approve needs no new consent, but (a public client, RFC 8252
        # section 8.6) still one click on the continue page, never a code without any page.
        http.cookies.delete(SESSION_COOKIE)
        again = authorize(first.url, client=http, username="-", password="-")
        assert not again.saw_login
        assert again.saw_consent
        assert again.code

    tokens = exchange_code(
        second.discovery, second.client, asked.code, second.verifier, world.federated.mcp_url
    )
    whoami = initialize(world.federated.mcp_url, tokens.access_token)
    assert whoami.status_code == 200


# --- a provider we cannot trust or reach ---------------------------------------------------------------
@pytest.mark.parametrize("spelling", ["trailing slash", "unreachable"])
async def test_metadata_naming_another_issuer_or_no_provider_at_all_means_unavailable(
    world: World, spelling: str
) -> None:
    issuer = world.idp.issuer + "/" if spelling == "trailing slash" else f"http://127.0.0.1:{free_port()}"
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        upstream_oidc_issuer=issuer,
        upstream_oidc_client_id=FEDERATED_CLIENT_ID,
    )
    upstream = UpstreamProvider.from_settings(settings, MemoryStore())
    with pytest.raises(UpstreamUnavailable):
        await upstream.begin("request-id", "binding")
