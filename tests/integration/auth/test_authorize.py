"""The authorization endpoint (requirements 2.2, AZ rows; X-04), over HTTP.

Requests come from a client registered through /register with a loopback redirect URI unless a
test says otherwise; errors for such a client are redirected (loopback reaches only the user's
own machine), while a client with an https redirect URI is shown an interstitial (AZ-16).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx2
import pytest

from shared import scopes
from shared.settings import Settings
from shared.storage.base import Store
from tests.integration.auth.conftest import HttpFactory, in_every_deployment
from tests.integration.auth.flow_helpers import (
    Pkce,
    authorize_params,
    callback_dict,
    callback_params,
    exchange_code,
    is_client_redirect,
    new_pkce,
    register,
    run_flow,
)
from tests.integration.auth.helpers import REDIRECT_URI, RESOURCE, introspect


@pytest.fixture
async def client_id(http: httpx2.AsyncClient) -> str:
    registered = await register(http)
    value: str = registered["client_id"]
    return value


@pytest.fixture
def pkce() -> Pkce:
    return new_pkce()


async def authorize(
    http: httpx2.AsyncClient, params: dict[str, str] | list[tuple[str, str]]
) -> httpx2.Response:
    pairs = tuple(params.items()) if isinstance(params, dict) else tuple(params)  # repeats kept
    return await http.get("/authorize", params=pairs)


def assert_error_page(response: httpx2.Response) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "location" not in response.headers


def assert_error_redirect(
    response: httpx2.Response, error: str, settings: Settings, state: str | None = "state-123"
) -> None:
    assert response.status_code == 302, response.text
    assert is_client_redirect(response)
    location = response.headers["location"]
    assert "#" not in location
    params = callback_dict(location)
    assert params["error"] == error
    assert params["iss"] == settings.issuer  # AZ-12: errors carry iss too
    assert params.get("state") == state
    assert "code" not in params


# -- AZ-01 parameters --------------------------------------------------------------------------


async def test_unknown_parameters_are_ignored(http: httpx2.AsyncClient, client_id: str, pkce: Pkce) -> None:
    response = await authorize(http, authorize_params(client_id, pkce, foo="bar"))
    assert response.status_code == 302
    assert urlsplit(response.headers["location"]).path == "/login"


@pytest.mark.parametrize("name", ["state", "scope", "code_challenge", "response_type"])
async def test_a_repeated_parameter_is_invalid_request(
    http: httpx2.AsyncClient, client_id: str, pkce: Pkce, name: str, settings: Settings
) -> None:
    pairs = [*authorize_params(client_id, pkce, scope="notes:read").items(), (name, "b")]
    response = await authorize(http, pairs)
    assert_error_redirect(
        response, "invalid_request", settings, state=None if name == "state" else "state-123"
    )


@pytest.mark.parametrize("name", ["client_id", "redirect_uri"])
async def test_a_repeated_client_id_or_redirect_uri_is_an_error_page(
    http: httpx2.AsyncClient, client_id: str, pkce: Pkce, name: str
) -> None:
    params = authorize_params(client_id, pkce)
    response = await authorize(http, [*params.items(), (name, params[name])])
    assert_error_page(response)


async def test_an_empty_parameter_counts_as_omitted(
    http: httpx2.AsyncClient, client_id: str, pkce: Pkce
) -> None:
    response = await run_flow(http, authorize_params(client_id, pkce, state="", scope=""))
    params = callback_dict(response.headers["location"])
    assert "state" not in params  # an empty state is no state
    token = await exchange_code(http, params["code"], client_id, pkce)
    assert token.json()["scope"].split() == list(scopes.CATALOGUE.baseline)  # empty scope = none


async def test_post_to_authorize_works_like_get(http: httpx2.AsyncClient, client_id: str, pkce: Pkce) -> None:
    response = await http.post("/authorize", data=authorize_params(client_id, pkce))
    assert response.status_code == 303
    assert urlsplit(response.headers["location"]).path == "/login"


# -- AZ-02 response type ---------------------------------------------------------------------


async def test_the_implicit_response_type_is_refused_without_a_token_anywhere(
    http: httpx2.AsyncClient, client_id: str, pkce: Pkce, settings: Settings
) -> None:
    response = await authorize(http, authorize_params(client_id, pkce, response_type="token"))
    assert_error_redirect(response, "unsupported_response_type", settings)
    assert "access_token" not in response.headers["location"]


async def test_a_missing_response_type_is_invalid_request(
    http: httpx2.AsyncClient, client_id: str, pkce: Pkce, settings: Settings
) -> None:
    response = await authorize(http, authorize_params(client_id, pkce, response_type=None))
    assert_error_redirect(response, "invalid_request", settings)


# -- AZ-03 / AZ-04 / AZ-05 / AZ-06 client and redirect URI -----------------------------------------


async def test_an_unknown_client_gets_an_error_page_and_no_redirect(
    http: httpx2.AsyncClient, pkce: Pkce
) -> None:
    assert_error_page(await authorize(http, authorize_params("no-such-client", pkce)))


async def test_a_missing_client_id_gets_an_error_page(http: httpx2.AsyncClient, pkce: Pkce) -> None:
    params = authorize_params("x", pkce)
    del params["client_id"]
    assert_error_page(await authorize(http, params))


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://app.example/cb/",
        "https://app.example/cb?x=1",
        "https://APP.example/cb",
        "https://app.example/cb2",
        "https://app.evil/cb",
        "https://app.example/cb#f",
        "https://app.example.evil/cb",
        "http://app.example/cb",
        "https://app.example/CB",
    ],
)
async def test_only_the_exact_registered_redirect_uri_is_accepted(
    http: httpx2.AsyncClient, pkce: Pkce, redirect_uri: str
) -> None:
    client = await register(http, redirect_uris=["https://app.example/cb"], application_type="web")
    response = await authorize(http, authorize_params(client["client_id"], pkce, redirect_uri=redirect_uri))
    assert_error_page(response)  # AZ-04


async def test_the_exact_registered_https_redirect_uri_is_accepted(
    http: httpx2.AsyncClient, pkce: Pkce
) -> None:
    client = await register(http, redirect_uris=["https://app.example/cb"], application_type="web")
    params = authorize_params(client["client_id"], pkce, redirect_uri="https://app.example/cb")
    assert (await authorize(http, params)).status_code == 302


async def test_with_several_registered_uris_the_redirect_uri_is_required(
    http: httpx2.AsyncClient, pkce: Pkce
) -> None:
    client = await register(http, redirect_uris=[REDIRECT_URI, "http://127.0.0.1:9/other"])
    assert_error_page(await authorize(http, authorize_params(client["client_id"], pkce, redirect_uri=None)))


async def test_with_one_registered_uri_the_redirect_uri_may_be_omitted(
    http: httpx2.AsyncClient, client_id: str, pkce: Pkce
) -> None:
    response = await run_flow(http, authorize_params(client_id, pkce, redirect_uri=None))
    assert response.headers["location"].startswith(REDIRECT_URI + "?code=")
    code = callback_dict(response.headers["location"])["code"]
    token = await http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": pkce.verifier,
            "client_id": client_id,
        },
    )
    assert token.status_code == 200, token.text


@pytest.mark.parametrize(
    ("registered", "requested"),
    [
        ("http://127.0.0.1/cb", "http://127.0.0.1:53124/cb"),
        ("http://127.0.0.1:8000/cb", "http://127.0.0.1:53124/cb"),
        ("http://[::1]/cb", "http://[::1]:61000/cb"),
        ("http://localhost:3000/callback", "http://localhost:4000/callback"),
    ],
)
async def test_a_loopback_redirect_uri_may_use_any_port(
    http: httpx2.AsyncClient, pkce: Pkce, registered: str, requested: str
) -> None:
    client = await register(http, redirect_uris=[registered])
    response = await run_flow(http, authorize_params(client["client_id"], pkce, redirect_uri=requested))
    assert response.headers["location"].startswith(requested + "?code=")  # AZ-05


@pytest.mark.parametrize(
    "requested",
    [
        "http://127.0.0.1:53124/other",
        "http://127.0.0.1.evil.com:1/cb",
        "http://localhost:53124/cb",
        "https://127.0.0.1:53124/cb",
        "http://127.0.0.1:53124/cb?x=1",
        "http://127.0.0.1:0x50/cb",
        "http://user@127.0.0.1:53124/cb",
    ],
)
async def test_everything_but_the_port_of_a_loopback_uri_must_still_match(
    http: httpx2.AsyncClient, pkce: Pkce, requested: str
) -> None:
    client = await register(http, redirect_uris=["http://127.0.0.1/cb"])
    assert_error_page(
        await authorize(http, authorize_params(client["client_id"], pkce, redirect_uri=requested))
    )


@pytest.mark.parametrize("redirect_uri", ["javascript:alert(1)", "http://app.example/cb", "data:text/html,x"])
async def test_dangerous_redirect_uris_are_refused_at_authorize(
    http: httpx2.AsyncClient, client_id: str, pkce: Pkce, redirect_uri: str
) -> None:
    assert_error_page(await authorize(http, authorize_params(client_id, pkce, redirect_uri=redirect_uri)))


# -- AZ-08 / AZ-09 PKCE -------------------------------------------------------------------------


async def test_a_request_without_code_challenge_is_invalid_request(
    http: httpx2.AsyncClient, client_id: str, pkce: Pkce, settings: Settings
) -> None:
    response = await authorize(http, authorize_params(client_id, pkce, code_challenge=None))
    assert_error_redirect(response, "invalid_request", settings)  # AZ-08


@pytest.mark.parametrize("method", ["plain", None, "S512", "s256"])
async def test_only_the_s256_method_is_accepted(
    http: httpx2.AsyncClient, client_id: str, pkce: Pkce, method: str | None, settings: Settings
) -> None:
    response = await authorize(http, authorize_params(client_id, pkce, code_challenge_method=method))
    assert_error_redirect(response, "invalid_request", settings)  # AZ-09


@pytest.mark.parametrize("challenge", ["a" * 42, "a" * 129, "a" * 40 + "+/=", "a" * 42 + " ", "ä" * 43])
async def test_a_malformed_code_challenge_is_invalid_request(
    http: httpx2.AsyncClient, client_id: str, pkce: Pkce, challenge: str, settings: Settings
) -> None:
    response = await authorize(http, authorize_params(client_id, pkce, code_challenge=challenge))
    assert_error_redirect(response, "invalid_request", settings)


# -- AZ-11 / AZ-12 state and iss ----------------------------------------------------------------

ODD_STATE = ("x%20y ü€😀 &=?#/+" * 40)[:512]


@in_every_deployment
async def test_state_comes_back_byte_exact_with_exactly_one_iss(
    http: httpx2.AsyncClient, client_id: str, pkce: Pkce, settings: Settings
) -> None:
    response = await run_flow(http, authorize_params(client_id, pkce, state=ODD_STATE))
    pairs = callback_params(response.headers["location"])
    assert dict(pairs)["state"] == ODD_STATE  # AZ-11
    assert [value for name, value in pairs if name == "iss"] == [settings.issuer]  # AZ-12


async def test_state_comes_back_byte_exact_on_an_error(
    http: httpx2.AsyncClient, client_id: str, pkce: Pkce, settings: Settings
) -> None:
    response = await authorize(http, authorize_params(client_id, pkce, state=ODD_STATE, scope="nope"))
    assert_error_redirect(response, "invalid_scope", settings, state=ODD_STATE)


async def test_the_code_is_appended_to_a_redirect_uri_that_has_a_query(
    http: httpx2.AsyncClient, pkce: Pkce
) -> None:
    redirect_uri = "http://127.0.0.1:53124/cb?tenant=a%20b"
    client = await register(http, redirect_uris=[redirect_uri])
    response = await run_flow(http, authorize_params(client["client_id"], pkce, redirect_uri=redirect_uri))
    location = response.headers["location"]
    assert location.startswith(redirect_uri + "&code=")
    assert callback_dict(location)["tenant"] == "a b"


# -- AZ-13 / AZ-14 resource ------------------------------------------------------------------------


async def test_the_mcp_resource_is_accepted_and_becomes_the_audience(
    http: httpx2.AsyncClient, client_id: str, pkce: Pkce
) -> None:
    response = await run_flow(http, authorize_params(client_id, pkce, resource=RESOURCE))
    code = callback_dict(response.headers["location"])["code"]
    token = await exchange_code(http, code, client_id, pkce, resource=RESOURCE)
    assert token.status_code == 200, token.text
    assert (await introspect(http, token.json()["access_token"])).json()["aud"] in (RESOURCE, [RESOURCE])


async def test_no_resource_means_the_default_mcp_resource_never_an_unrestricted_token(
    http: httpx2.AsyncClient, client_id: str, pkce: Pkce
) -> None:
    response = await run_flow(http, authorize_params(client_id, pkce))
    code = callback_dict(response.headers["location"])["code"]
    token = await exchange_code(http, code, client_id, pkce)
    assert token.status_code == 200, token.text
    assert (await introspect(http, token.json()["access_token"])).json()["aud"] in (
        RESOURCE,
        [RESOURCE],
    )  # AZ-14


@pytest.mark.parametrize(
    "resource",
    [
        "https://evil.example/",
        f"{RESOURCE}#x",
        f"{RESOURCE}/",
        "mcp",
        RESOURCE.removesuffix("/mcp") + "/other",
    ],
)
async def test_a_resource_this_server_does_not_protect_is_invalid_target(
    http: httpx2.AsyncClient, client_id: str, pkce: Pkce, resource: str, settings: Settings
) -> None:
    response = await authorize(http, authorize_params(client_id, pkce, resource=resource))
    assert_error_redirect(response, "invalid_target", settings)  # AZ-13


async def test_two_different_resources_are_invalid_target(
    http: httpx2.AsyncClient, client_id: str, pkce: Pkce, settings: Settings
) -> None:
    pairs = [
        *authorize_params(client_id, pkce, resource=RESOURCE).items(),
        ("resource", "https://evil.example/"),
    ]
    assert_error_redirect(await authorize(http, pairs), "invalid_target", settings)


async def test_the_same_resource_twice_is_accepted(
    http: httpx2.AsyncClient, client_id: str, pkce: Pkce
) -> None:
    pairs = [*authorize_params(client_id, pkce, resource=RESOURCE).items(), ("resource", RESOURCE)]
    assert urlsplit((await authorize(http, pairs)).headers["location"]).path == "/login"


# -- AZ-15 scope -------------------------------------------------------------------------------


async def test_an_unknown_scope_is_invalid_scope(
    http: httpx2.AsyncClient, client_id: str, pkce: Pkce, settings: Settings
) -> None:
    response = await authorize(http, authorize_params(client_id, pkce, scope="notes:read nope"))
    assert_error_redirect(response, "invalid_scope", settings)


async def test_a_scope_outside_a_configured_clients_scope_is_invalid_scope(
    make_http: HttpFactory, pkce: Pkce, settings: Settings
) -> None:
    configured: dict[str, Any] = {
        "client_id": "limited",
        "redirect_uris": [REDIRECT_URI],
        "scope": "notes:read",
    }
    http = await make_http(auth_clients=[configured])
    response = await authorize(http, authorize_params("limited", pkce, scope="notes:write"))
    assert_error_redirect(response, "invalid_scope", settings)


async def test_no_scope_means_the_baseline_scopes_a_configured_client_may_ask_for(
    make_http: HttpFactory, pkce: Pkce
) -> None:
    configured = {
        "client_id": "writer",
        "redirect_uris": [REDIRECT_URI],
        "scope": "notes:write mcp:tools:read",
    }
    http = await make_http(auth_clients=[configured])
    response = await run_flow(http, authorize_params("writer", pkce))
    code = callback_dict(response.headers["location"])["code"]
    token = await exchange_code(http, code, "writer", pkce)
    # notes:write implies notes:read, which is baseline; writing itself is never baseline
    assert set(token.json()["scope"].split()) == {"mcp:tools:read", "notes:read"}


async def test_a_registered_clients_scope_does_not_block_a_later_step_up(
    http: httpx2.AsyncClient, pkce: Pkce
) -> None:
    client = await register(http, scope="notes:read")
    response = await run_flow(http, authorize_params(client["client_id"], pkce, scope="notes:write"))
    code = callback_dict(response.headers["location"])["code"]
    token = await exchange_code(http, code, client["client_id"], pkce)
    assert token.json()["scope"] == "notes:write"


async def test_requested_scopes_are_granted_as_asked(
    http: httpx2.AsyncClient, client_id: str, pkce: Pkce
) -> None:
    response = await run_flow(http, authorize_params(client_id, pkce, scope="notes:write"))
    code = callback_dict(response.headers["location"])["code"]
    token = await exchange_code(http, code, client_id, pkce)
    assert token.json()["scope"] == "notes:write"


# -- AZ-16 untrusted redirect URIs -------------------------------------------------------------


async def test_an_error_for_a_new_client_with_an_https_redirect_is_an_interstitial_not_a_redirect(
    http: httpx2.AsyncClient, pkce: Pkce
) -> None:
    client = await register(http, redirect_uris=["https://phish.example/cb"], application_type="web")
    params = authorize_params(
        client["client_id"], pkce, redirect_uri="https://phish.example/cb", scope="nope"
    )
    response = await authorize(http, params)
    assert_error_page(response)
    assert "phish.example" in response.text  # names where the link goes
    assert "https://phish.example/cb?error=invalid_scope" in response.text


async def test_an_error_for_a_preregistered_client_redirects_at_once(
    make_http: HttpFactory, pkce: Pkce
) -> None:
    configured: dict[str, Any] = {"client_id": "first-party", "redirect_uris": ["https://app.example/cb"]}
    http = await make_http(auth_clients=[configured])
    params = authorize_params("first-party", pkce, redirect_uri="https://app.example/cb", scope="nope")
    response = await authorize(http, params)
    assert response.status_code == 302
    assert response.headers["location"].startswith("https://app.example/cb?error=invalid_scope")


async def test_the_user_signs_in_before_any_code_is_sent(
    http: httpx2.AsyncClient, client_id: str, pkce: Pkce
) -> None:
    response = await authorize(http, authorize_params(client_id, pkce))
    assert response.status_code == 302
    assert not is_client_redirect(response)  # AZ-16: login first


async def test_a_client_without_the_code_grant_is_unauthorized_client(
    http: httpx2.AsyncClient, pkce: Pkce, settings: Settings
) -> None:
    client = await register(
        http,
        token_endpoint_auth_method="client_secret_basic",
        grant_types=["refresh_token"],
        response_types=[],
        redirect_uris=[REDIRECT_URI],
    )
    response = await authorize(http, authorize_params(client["client_id"], pkce))
    assert_error_redirect(response, "unauthorized_client", settings)


# -- AZ-18 / AZ-21 / X-04 headers and escaping ------------------------------------------------------


async def test_every_authorize_answer_forbids_framing_and_caching(
    http: httpx2.AsyncClient, client_id: str, pkce: Pkce
) -> None:
    error_page = await authorize(http, authorize_params("unknown", pkce))
    redirect = await authorize(http, authorize_params(client_id, pkce))
    login_page = await http.get(redirect.headers["location"])
    for response in (error_page, login_page):
        assert response.headers["x-frame-options"] == "DENY"  # AZ-18
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["cache-control"] == "no-store"
    assert redirect.headers["cache-control"] == "no-store"


async def test_the_authorization_endpoint_has_no_cors(
    http: httpx2.AsyncClient, client_id: str, pkce: Pkce
) -> None:
    origin = {"Origin": "https://app.example"}
    get = await authorize_with_headers(http, authorize_params(client_id, pkce), origin)
    options = await http.options(
        "/authorize",
        headers={**origin, "Access-Control-Request-Method": "GET"},
        params=authorize_params(client_id, pkce),
    )
    for response in (get, options):
        assert "access-control-allow-origin" not in response.headers  # AZ-21


async def authorize_with_headers(
    http: httpx2.AsyncClient, params: dict[str, str], headers: dict[str, str]
) -> httpx2.Response:
    return await http.get("/authorize", params=params, headers=headers)


async def test_markup_in_state_and_redirect_uri_is_escaped_on_the_error_page(
    http: httpx2.AsyncClient, pkce: Pkce
) -> None:
    script = "<script>alert(1)</script>"
    params = authorize_params(
        "unknown-client", pkce, state=script, redirect_uri=f"https://x.example/{script}"
    )
    response = await authorize(http, params)
    assert_error_page(response)
    assert "<script>" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text


# -- codes ----------------------------------------------------------------------------------------


async def test_the_code_is_stored_only_as_a_digest_with_the_code_ttl(
    make_http: HttpFactory, store: Store, pkce: Pkce
) -> None:
    from auth_server import crypto

    http = await make_http(authorization_code_ttl=60)
    client = await register(http)
    response = await run_flow(http, authorize_params(client["client_id"], pkce))
    code = callback_dict(response.headers["location"])["code"]
    assert len(code) >= 43
    key = f"auth:code:{crypto.digest(code)}"
    record = await store.get(key)
    assert record is not None
    assert code not in record
    ttl = await store.ttl(key)
    assert ttl is not None
    assert 0 < ttl <= 60


async def test_each_authorization_gets_a_new_code(
    http: httpx2.AsyncClient, client_id: str, pkce: Pkce
) -> None:
    first = await run_flow(http, authorize_params(client_id, pkce))
    second = await run_flow(http, authorize_params(client_id, pkce))
    assert (
        callback_dict(first.headers["location"])["code"] != callback_dict(second.headers["location"])["code"]
    )


async def test_redirected_error_descriptions_are_printable_ascii_without_quotes(
    http: httpx2.AsyncClient, client_id: str, pkce: Pkce
) -> None:
    response = await authorize(http, authorize_params(client_id, pkce, scope='"é\\ß'))
    description = callback_dict(response.headers["location"])["error_description"]
    assert description.isascii()
    assert '"' not in description
    assert "\\" not in description
