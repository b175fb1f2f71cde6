"""The token endpoint, authorization_code and client_credentials grants (rows TK-01..TK-16)."""

from __future__ import annotations

import asyncio
import base64
import re
import time

import httpx2
import pytest

from shared.settings import Settings
from shared.storage.base import Store
from shared.storage.records import code_key
from shared.storage.redis import RedisStore
from tests.fixtures.redis_server import free_port
from tests.fixtures.waits import eventually
from tests.integration.auth.conftest import AuthServers, Configure, HttpFactory, in_every_deployment
from tests.integration.auth.flow_helpers import (
    Pkce,
    authorize_params,
    callback_dict,
    exchange_code,
    new_pkce,
    run_flow,
)
from tests.integration.auth.helpers import (
    RESOURCE,
    add_client,
    code_form,
    configured_client,
    introspect,
    is_active,
    pkce_pair,
    redeem,
    refresh,
    store_code,
    tokens_for,
)

OAUTH_ERRORS = {
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_target",
}


def assert_error(response: httpx2.Response, error: str, status: int = 400) -> None:
    """RFC 6749 section 5.2: JSON object with `error`, never cached."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["error"] == error
    assert set(body) <= {"error", "error_description", "error_uri"}
    # RFC 6749 5.2: %x20-21 / %x23-5B / %x5D-7E (printable ASCII without '"' and '\\')
    assert all(0x20 <= ord(c) <= 0x7E and c not in '"\\' for c in body.get("error_description", ""))


# -- TK-01: POST form only ---------------------------------------------------------------------


async def test_get_on_the_token_endpoint_is_refused(http: httpx2.AsyncClient) -> None:
    response = await http.get("/token")
    assert response.status_code == 405


async def test_a_json_body_is_invalid_request(http: httpx2.AsyncClient) -> None:
    response = await http.post("/token", json={"grant_type": "client_credentials"})
    assert_error(response, "invalid_request")


async def test_a_repeated_parameter_is_invalid_request(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    code = await store_code(store, client, settings=settings)
    body = httpx2.QueryParams(code_form(code, client)).add("code", "other").add("code", code.code)
    response = await http.post(
        "/token", content=str(body), headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert_error(response, "invalid_request")


async def test_unknown_parameters_are_ignored_and_empty_ones_count_as_absent(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    code = await store_code(store, client, settings=settings)
    response = await redeem(http, code, client, foo="bar", scope="", resource="")
    assert response.status_code == 200, response.text


async def test_undecodable_form_bodies_are_invalid_request_not_a_server_error(
    http: httpx2.AsyncClient,
) -> None:
    headers = {"content-type": "application/x-www-form-urlencoded"}
    for body in (b"\xff\xfe=\x00", b"grant_type=%ff%fe", b"a=" + b"x" * 20_000):
        response = await http.post("/token", content=body, headers=headers)
        assert response.status_code in (400, 413), response.text
        assert response.json()["error"] == "invalid_request"


async def test_hostile_input_is_never_echoed_raw_in_error_descriptions(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    hostile = 'é"\\<script>\x00' * 20
    assert_error(await http.post("/token", data={"grant_type": hostile}), "unsupported_grant_type")
    body = f"{hostile}=1&{hostile}=2".encode()
    response = await http.post(
        "/token", content=body, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert_error(response, "invalid_request")
    tokens = await tokens_for(http, store, settings, client)
    assert_error(await refresh(http, tokens["refresh_token"], client, scope=hostile), "invalid_scope")


# -- TK-02: success ---------------------------------------------------------------------------


async def test_the_code_grant_returns_a_bearer_token_that_is_never_cached(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    code = await store_code(store, client, settings=settings)
    response = await redeem(http, code, client)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == settings.access_token_ttl
    assert body["scope"].split() == ["mcp:tools:read", "mcp:resources:read", "mcp:prompts:read", "notes:read"]
    assert body["access_token"]
    assert body["refresh_token"]
    assert body["access_token"] != body["refresh_token"]


async def test_a_client_without_the_refresh_grant_gets_no_refresh_token(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store, grant_types=("authorization_code",))
    body = await tokens_for(http, store, settings, client)
    assert "refresh_token" not in body


# -- TK-03 / TK-06: errors and client authentication ------------------------------------------


async def test_a_wrong_basic_secret_is_401_invalid_client_with_a_basic_challenge(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store, confidential=True)
    code = await store_code(store, client, settings=settings)
    form = code_form(code, client)
    del form["client_secret"]
    response = await http.post("/token", data=form, auth=httpx2.BasicAuth(client.client_id, "wrong"))
    assert_error(response, "invalid_client", 401)
    assert response.headers["www-authenticate"].startswith("Basic ")


async def test_a_confidential_client_without_its_secret_is_invalid_client(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store, confidential=True)
    code = await store_code(store, client, settings=settings)
    form = code_form(code, client)
    del form["client_secret"]
    assert_error(await http.post("/token", data=form), "invalid_client", 401)


async def test_an_unknown_client_is_invalid_client(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    response = await http.post(
        "/token",
        data={"grant_type": "authorization_code", "code": "x", "client_id": "nobody", "code_verifier": "y"},
    )
    assert_error(response, "invalid_client", 401)


async def test_two_client_authentication_methods_at_once_are_invalid_request(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store, confidential=True)
    code = await store_code(store, client, settings=settings)
    response = await http.post("/token", data=code_form(code, client), auth=client.basic())
    assert_error(response, "invalid_request")


async def test_client_secret_post_and_basic_both_authenticate_a_confidential_client(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store, confidential=True)
    code = await store_code(store, client, settings=settings)
    assert (await redeem(http, code, client)).status_code == 200  # client_secret_post

    code = await store_code(store, client, settings=settings)
    form = code_form(code, client)
    del form["client_secret"], form["client_id"]
    assert (await http.post("/token", data=form, auth=client.basic())).status_code == 200


async def test_basic_credentials_are_form_urlencoded_before_base64(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    """RFC 6749 2.3.1: an id or secret with ':' or '%' survives the header."""
    client = await add_client(
        store, confidential=True, client_id="id:with%odd chars", secret="s3cret:with+percent%and space"
    )
    from urllib.parse import quote_plus

    code = await store_code(store, client, settings=settings)
    form = code_form(code, client)
    del form["client_secret"], form["client_id"]
    assert client.secret is not None
    auth = httpx2.BasicAuth(quote_plus(client.client_id), quote_plus(client.secret))
    response = await http.post("/token", data=form, auth=auth)
    assert response.status_code == 200, response.text


async def test_missing_required_parameters_are_invalid_request(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    assert_error(await http.post("/token", data={"client_id": client.client_id}), "invalid_request")
    assert_error(
        await http.post("/token", data={"grant_type": "authorization_code", **client.auth()}),
        "invalid_request",
    )
    assert_error(
        await http.post("/token", data={"grant_type": "refresh_token", **client.auth()}), "invalid_request"
    )


# -- TK-05 / TK-07 / TK-08 / TK-12 / TK-13: what a code is bound to ----------------------------


async def test_a_code_redeemed_by_another_client_is_invalid_grant(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    alice, bob = await add_client(store), await add_client(store)
    code = await store_code(store, alice, settings=settings)
    assert_error(await redeem(http, code, bob), "invalid_grant")


async def test_a_missing_code_verifier_is_invalid_grant(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    code = await store_code(store, client, settings=settings)
    form = code_form(code, client)
    del form["code_verifier"]
    assert_error(await http.post("/token", data=form), "invalid_grant")


async def test_a_wrong_code_verifier_is_invalid_grant(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    code = await store_code(store, client, settings=settings)
    other_verifier, _ = pkce_pair()
    assert_error(await redeem(http, code, client, code_verifier=other_verifier), "invalid_grant")


async def test_a_code_without_a_challenge_is_never_redeemable(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    code = await store_code(store, client, settings=settings, challenge="")
    assert_error(await redeem(http, code, client), "invalid_grant")


async def test_a_redirect_uri_differing_from_the_authorization_request_is_invalid_grant(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    code = await store_code(store, client, settings=settings)
    response = await redeem(http, code, client, redirect_uri="http://127.0.0.1:53124/other")
    assert_error(response, "invalid_grant")


async def test_a_redirect_uri_sent_at_authorization_must_be_repeated(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    code = await store_code(store, client, settings=settings)
    form = code_form(code, client)
    del form["redirect_uri"]
    assert_error(await http.post("/token", data=form), "invalid_grant")


async def test_a_redirect_uri_omitted_at_authorization_may_be_omitted_at_the_token_endpoint(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    code = await store_code(store, client, settings=settings, redirect_uri_in_request=False)
    form = code_form(code, client)
    del form["redirect_uri"]
    assert (await http.post("/token", data=form)).status_code == 200


async def test_a_resource_other_than_the_authorized_one_is_invalid_target(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    code = await store_code(store, client, settings=settings)
    response = await redeem(http, code, client, resource="https://other.example/mcp")
    assert_error(response, "invalid_target")


async def test_the_access_token_audience_is_the_authorized_resource(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    body = await tokens_for(http, store, settings, client)
    info = (await introspect(http, body["access_token"])).json()
    assert info["aud"] == RESOURCE
    assert info["sub"] == "demo"


# -- TK-09 / TK-10 / TK-11: single use, replay, expiry -----------------------------------------


async def test_a_code_can_be_redeemed_only_once(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    code = await store_code(store, client, settings=settings)
    assert (await redeem(http, code, client)).status_code == 200
    assert_error(await redeem(http, code, client), "invalid_grant")


@in_every_deployment
async def test_concurrent_redemptions_of_one_code_leave_no_live_token(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    """Single use under concurrency: at most one request gets tokens, and since the others are
    valid replays (same client, right verifier), whatever it got is revoked with the grant."""
    client = await add_client(store)
    code = await store_code(store, client, settings=settings)
    responses = await asyncio.gather(*(redeem(http, code, client) for _ in range(8)))
    winners = [r.json() for r in responses if r.status_code == 200]
    assert len(winners) <= 1
    assert all(r.json()["error"] == "invalid_grant" for r in responses if r.status_code != 200)
    for body in winners:
        assert not await is_active(http, body["access_token"])
        assert not await is_active(http, body["refresh_token"])


@in_every_deployment
async def test_a_valid_code_replay_revokes_every_token_issued_from_that_code(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    code = await store_code(store, client, settings=settings)
    first = (await redeem(http, code, client)).json()
    assert await is_active(http, first["access_token"])

    assert_error(await redeem(http, code, client), "invalid_grant")

    assert not await is_active(http, first["access_token"])
    assert not await is_active(http, first["refresh_token"])


async def test_a_replay_with_a_bad_verifier_revokes_nothing(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    code = await store_code(store, client, settings=settings)
    first = (await redeem(http, code, client)).json()
    other_verifier, _ = pkce_pair()
    assert_error(await redeem(http, code, client, code_verifier=other_verifier), "invalid_grant")
    stranger = await add_client(store)
    assert_error(await redeem(http, code, stranger), "invalid_grant")
    assert await is_active(http, first["access_token"])
    assert await is_active(http, first["refresh_token"])


@in_every_deployment
async def test_an_expired_code_is_invalid_grant(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    """The store forgets a code at the end of its TTL (the next test: a code still stored past
    its lifetime); planted with a TTL of a tenth of a second, it is gone once the store says so."""
    client = await add_client(store)
    code = await store_code(store, client, settings=settings, ttl=0.1)
    key = code_key(code.code)

    async def forgotten() -> bool:
        return await store.get(key) is None

    await eventually(forgotten, "the store to expire the code")
    assert_error(await redeem(http, code, client), "invalid_grant")


async def test_a_code_older_than_its_lifetime_is_refused_even_if_still_stored(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    old = int(time.time()) - settings.authorization_code_ttl - 1
    code = await store_code(store, client, settings=settings, issued_at=old, ttl=60)
    assert_error(await redeem(http, code, client), "invalid_grant")


# -- TK-14: grant types -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "grant_type", ["password", "implicit", "token", "urn:ietf:params:oauth:grant-type:x"]
)
async def test_removed_and_unknown_grant_types_are_unsupported(
    http: httpx2.AsyncClient, store: Store, grant_type: str
) -> None:
    client = await add_client(store)
    response = await http.post(
        "/token", data={"grant_type": grant_type, "username": "demo", "password": "demo", **client.auth()}
    )
    assert_error(response, "unsupported_grant_type")


async def test_client_credentials_is_refused_to_a_public_client(
    http: httpx2.AsyncClient, store: Store
) -> None:
    client = await add_client(store, grant_types=("client_credentials",))
    response = await http.post("/token", data={"grant_type": "client_credentials", **client.auth()})
    assert_error(response, "unauthorized_client")


async def test_client_credentials_is_refused_to_a_client_not_registered_for_it(
    http: httpx2.AsyncClient, store: Store
) -> None:
    client = await add_client(store, confidential=True)
    response = await http.post("/token", data={"grant_type": "client_credentials", **client.auth()})
    assert_error(response, "unauthorized_client")


async def test_client_credentials_issues_a_token_whose_subject_is_the_namespaced_client(
    make_http: HttpFactory,
) -> None:
    entry, client = configured_client(grant_types=["client_credentials"], scope="notes:write")
    http = await make_http(auth_clients=[entry])
    response = await http.post(
        "/token", data={"grant_type": "client_credentials", "scope": "notes:read", **client.auth()}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "refresh_token" not in body
    assert body["scope"] == "notes:read"
    info = (await introspect(http, body["access_token"])).json()
    expected = (f"client:{client.client_id}", client.client_id, RESOURCE)
    assert (info["sub"], info["client_id"], info["aud"]) == expected


async def test_client_credentials_refuses_unknown_scopes_and_resources(make_http: HttpFactory) -> None:
    entry, client = configured_client(grant_types=["client_credentials"], scope="notes:read")
    http = await make_http(auth_clients=[entry])
    form = {"grant_type": "client_credentials", **client.auth()}
    assert_error(await http.post("/token", data={**form, "scope": "notes:write"}), "invalid_scope")
    assert_error(await http.post("/token", data={**form, "scope": "nope"}), "invalid_scope")
    assert_error(
        await http.post("/token", data={**form, "resource": "https://evil.example/mcp"}), "invalid_target"
    )


# -- TK-15 / TK-16: lifetimes and unguessability ----------------------------------------------


@in_every_deployment
async def test_access_tokens_are_short_lived_and_die_at_expiry(
    make_http: HttpFactory, store: Store, configure: Configure
) -> None:
    http = await make_http(access_token_ttl=1)
    settings = configure(access_token_ttl=1)
    client = await add_client(store)
    body = await tokens_for(http, store, settings, client)
    assert body["expires_in"] == 1
    assert await is_active(http, body["access_token"])

    async def expired() -> bool:
        return not await is_active(http, body["access_token"])

    await eventually(expired, "the access token to expire", every=0.1)


async def test_issued_tokens_are_unique_and_carry_at_least_256_random_bits(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    seen: set[str] = set()
    for _ in range(20):
        body = await tokens_for(http, store, settings, client)
        for token in (body["access_token"], body["refresh_token"]):
            assert re.fullmatch(r"[A-Za-z0-9_-]{43,}", token)
            seen.add(token)
    assert len(seen) == 40


# -- through the real front channel: /authorize, login, consent --------------------------------


async def authorize(http: httpx2.AsyncClient, client_id: str) -> tuple[str, Pkce]:
    """The real front channel: /authorize, sign in as demo/demo, consent; returns the code."""
    pkce = new_pkce()
    response = await run_flow(http, authorize_params(client_id, pkce, resource=RESOURCE))
    assert response.status_code in (302, 303), response.text
    params = callback_dict(response.headers["location"])
    assert params["state"] == "state-123"
    return params["code"], pkce


@in_every_deployment
async def test_the_code_from_authorize_and_login_is_redeemed_for_tokens(
    http: httpx2.AsyncClient, store: Store
) -> None:
    client = await add_client(store)
    code, pkce = await authorize(http, client.client_id)
    response = await exchange_code(http, code, client.client_id, pkce, resource=RESOURCE)
    assert response.status_code == 200, response.text
    body = response.json()
    info = (await introspect(http, body["access_token"])).json()
    assert (info["active"], info["sub"], info["aud"]) == (True, "demo", RESOURCE)
    assert (await refresh(http, body["refresh_token"], client)).status_code == 200


async def test_replaying_a_code_from_authorize_revokes_the_tokens_it_issued(
    http: httpx2.AsyncClient, store: Store
) -> None:
    client = await add_client(store)
    code, pkce = await authorize(http, client.client_id)
    first = (await exchange_code(http, code, client.client_id, pkce)).json()
    assert await is_active(http, first["access_token"])

    assert_error(await exchange_code(http, code, client.client_id, pkce), "invalid_grant")

    assert not await is_active(http, first["access_token"])
    assert not await is_active(http, first["refresh_token"])


async def test_browser_clients_may_call_the_back_channel_cross_origin(http: httpx2.AsyncClient) -> None:
    for path in ("/token", "/revoke", "/introspect"):
        preflight = await http.options(
            path, headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
        )
        assert preflight.status_code == 200  # Starlette's CORSMiddleware
        assert preflight.headers["access-control-allow-origin"] == "*"
        answer = await http.post(path, data={}, headers={"Origin": "https://app.example"})
        assert answer.headers["access-control-allow-origin"] == "*"


@in_every_deployment
async def test_a_store_outage_is_503_with_retry_after_never_a_500(servers: AuthServers) -> None:
    dead = RedisStore.from_url(f"redis://127.0.0.1:{free_port()}/0")
    running = await servers.start(store=dead)
    try:
        async with running.client() as http:
            for path in ("/token", "/introspect", "/revoke"):
                response = await http.post(path, data={"grant_type": "client_credentials", "token": "t"})
                assert_error(response, "temporarily_unavailable", 503)
                assert response.headers["retry-after"]
    finally:
        await servers.stop([running])
        await dead.close()


async def test_malformed_requests_get_spec_shaped_errors_never_a_500(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(
        store, confidential=True, grant_types=("authorization_code", "client_credentials")
    )
    form = "application/x-www-form-urlencoded"
    odd_values = ["", "\x00", "é" * 3000, "a" * 5000, "%", "..", "eyJ.eyJ.x", '"\\']
    headers_variants = [
        {},
        {"authorization": "Basic !!!"},
        {"authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
        {"authorization": "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode()},
        {"authorization": "Basic " + base64.b64encode(b":").decode()},
        {"authorization": "Bearer something"},
        {"authorization": "Basic"},
    ]
    requests: list[tuple[str, dict[str, str], bytes]] = []
    for path in ("/token", "/introspect", "/revoke"):
        for headers in headers_variants:
            requests.append(
                (path, {**headers, "content-type": form}, b"grant_type=client_credentials&token=x")
            )
        for value in odd_values:
            for name in (
                "grant_type",
                "code",
                "code_verifier",
                "refresh_token",
                "client_id",
                "token",
                "scope",
            ):
                body = str(
                    httpx2.QueryParams({"grant_type": "authorization_code", **client.auth(), name: value})
                )
                requests.append((path, {"content-type": form}, body.encode()))
        requests.append((path, {"content-type": "multipart/form-data; boundary=x"}, b"--x--"))
        requests.append((path, {"content-type": "text/plain"}, b"grant_type=client_credentials"))
        requests.append((path, {}, b""))
    for path, headers, body in requests:
        response = await http.post(path, content=body, headers=headers)
        assert response.status_code in (200, 400, 401, 413), (path, headers, body[:80], response.text)
        if response.status_code != 200:
            assert_error(response, response.json()["error"], response.status_code)
