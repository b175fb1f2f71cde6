"""Private-use URI scheme redirects for native apps (RFC 8252 section 7.1), e.g. Cursor's
`cursor://anysphere.cursor-mcp/oauth/callback`: refused unless the operator lists the scheme in
NATIVE_REDIRECT_SCHEMES, and then only for `application_type: native` clients, exactly matched,
with the consent page showing the whole link and warning that any app may claim the scheme.
Web and script schemes can never be configured (AZ-06, DR-04, DR-06, AZ-16, AZ-17)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx2
import pytest

from shared.settings import Settings, SettingsError, load_settings
from tests.integration.auth.conftest import AuthServers, HttpFactory
from tests.integration.auth.flow_helpers import (
    Pkce,
    authorize_params,
    callback_dict,
    decide,
    exchange_code,
    new_pkce,
    run_flow,
    sign_in,
)

CURSOR = "cursor://anysphere.cursor-mcp/oauth/callback"
ALLOW_CURSOR = {"native_redirect_schemes": ["cursor"]}


@pytest.fixture
def pkce() -> Pkce:
    return new_pkce()


async def register(http: httpx2.AsyncClient, **metadata: Any) -> httpx2.Response:
    body: dict[str, Any] = {
        "redirect_uris": [CURSOR],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "client_name": "Cursor",
        "application_type": "native",
    }
    body.update(metadata)
    return await http.post("/register", json={k: v for k, v in body.items() if v is not None})


async def registered_client_id(http: httpx2.AsyncClient, **metadata: Any) -> str:
    response = await register(http, **metadata)
    assert response.status_code == 201, response.text
    client_id: str = response.json()["client_id"]
    return client_id


def assert_refused_redirect_uri(response: httpx2.Response) -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_redirect_uri"


def assert_error_page(response: httpx2.Response) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "location" not in response.headers


# -- registration --------------------------------------------------------------------------------


async def test_without_the_setting_a_custom_scheme_redirect_uri_is_refused(http: httpx2.AsyncClient) -> None:
    assert_refused_redirect_uri(await register(http))


async def test_an_allowed_scheme_is_registered_for_a_native_client(make_http: HttpFactory) -> None:
    http = await make_http(**ALLOW_CURSOR)
    response = await register(http)
    assert response.status_code == 201, response.text
    assert response.json()["redirect_uris"] == [CURSOR]
    assert response.json()["application_type"] == "native"


async def test_a_client_that_omits_application_type_with_only_app_links_is_native(
    make_http: HttpFactory,
) -> None:
    http = await make_http(**ALLOW_CURSOR)
    response = await register(http, application_type=None, redirect_uris=[CURSOR, "http://127.0.0.1/cb"])
    assert response.status_code == 201, response.text
    assert response.json()["application_type"] == "native"


@pytest.mark.parametrize(
    "metadata",
    [
        pytest.param({"application_type": "web"}, id="explicit-web"),
        pytest.param(
            {"application_type": None, "redirect_uris": [CURSOR, "https://app.example/cb"]},
            id="inferred-web",
        ),
    ],
)
async def test_a_web_client_may_not_use_an_allowed_private_use_scheme(
    make_http: HttpFactory, metadata: dict[str, Any]
) -> None:
    http = await make_http(**ALLOW_CURSOR)
    assert_refused_redirect_uri(await register(http, **metadata))


@pytest.mark.parametrize(
    "redirect_uri",
    [
        f"{CURSOR}#fragment",
        "cursor://someone@anysphere.cursor-mcp/oauth/callback",
        "cursor:",
        "cursor://",
        "cursor:/",
        "vscode://vscode.github-authentication/did-authenticate",  # a scheme nobody allowed
        "javascript:alert(1)",
        "data:text/html,hi",
        "file:///etc/passwd",
    ],
)
async def test_bad_or_unlisted_app_links_are_refused_even_with_a_scheme_allowed(
    make_http: HttpFactory, redirect_uri: str
) -> None:
    http = await make_http(**ALLOW_CURSOR)
    assert_refused_redirect_uri(await register(http, redirect_uris=[redirect_uri]))


async def test_a_configured_web_client_with_an_app_link_stops_start_up(servers: AuthServers) -> None:
    configured = {"client_id": "web-app", "redirect_uris": [CURSOR], "application_type": "web"}
    with pytest.raises(ValueError, match="native apps only"):
        await servers.start(auth_clients=[configured], **ALLOW_CURSOR)


# -- the settings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "scheme",
    [
        "javascript",
        "data",
        "file",
        "vbscript",
        "http",
        "https",
        "HTTPS",
        "blob",
        "about",
        "1app",
        "my app",
        "",
    ],
)
def test_web_and_script_schemes_can_never_be_configured_as_native_schemes(scheme: str) -> None:
    with pytest.raises(SettingsError) as failure:
        load_settings(native_redirect_schemes=[scheme], _env_file=None)
    assert "NATIVE_REDIRECT_SCHEMES" in str(failure.value.code)


def test_configured_schemes_are_compared_in_lower_case() -> None:
    settings = Settings(native_redirect_schemes=["Cursor", "com.example.App"], _env_file=None)  # type: ignore[call-arg]
    assert settings.native_redirect_schemes == ["cursor", "com.example.app"]


# -- the authorization request -----------------------------------------------------------------------


async def test_the_code_goes_to_the_app_link_with_state_and_iss_and_redeems_there(
    make_http: HttpFactory, pkce: Pkce, settings: Settings
) -> None:
    http = await make_http(**ALLOW_CURSOR)
    client_id = await registered_client_id(http)
    response = await run_flow(http, authorize_params(client_id, pkce, redirect_uri=CURSOR))
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith(f"{CURSOR}?code=")
    params = callback_dict(location)
    assert (params["state"], params["iss"]) == ("state-123", settings.issuer)
    token = await exchange_code(http, params["code"], client_id, pkce, redirect_uri=CURSOR)
    assert token.status_code == 200, token.text
    assert token.json()["access_token"]


@pytest.mark.parametrize(
    "requested",
    [
        "cursor://anysphere.cursor-mcp/oauth/other",
        "cursor://anysphere.cursor-mcp:8080/oauth/callback",  # no loopback-style port leeway
        "CURSOR://anysphere.cursor-mcp/oauth/callback",
        f"{CURSOR}?x=1",
    ],
)
async def test_an_app_link_must_match_the_registered_one_exactly(
    make_http: HttpFactory, pkce: Pkce, requested: str
) -> None:
    http = await make_http(**ALLOW_CURSOR)
    client_id = await registered_client_id(http)
    assert_error_page(
        await http.get("/authorize", params=authorize_params(client_id, pkce, redirect_uri=requested))
    )


async def test_an_error_for_an_app_link_is_an_interstitial_not_a_redirect(
    make_http: HttpFactory, pkce: Pkce
) -> None:
    http = await make_http(**ALLOW_CURSOR)
    client_id = await registered_client_id(http)
    params = authorize_params(client_id, pkce, redirect_uri=CURSOR, scope="nope")
    response = await http.get("/authorize", params=params)
    assert_error_page(response)  # AZ-16: any app on the device may have claimed the scheme
    assert f"{CURSOR}?error=invalid_scope" in response.text


async def test_removing_the_scheme_from_the_setting_refuses_clients_registered_with_it(
    make_http: HttpFactory, pkce: Pkce
) -> None:
    allowing = await make_http(**ALLOW_CURSOR)
    client_id = await registered_client_id(allowing)
    not_any_more = await make_http()  # same Store, the operator took "cursor" out again
    response = await not_any_more.get(
        "/authorize", params=authorize_params(client_id, pkce, redirect_uri=CURSOR)
    )
    assert_error_page(response)


# -- the consent page ----------------------------------------------------------------------------------


async def test_the_consent_page_shows_the_whole_app_link_and_warns_that_any_app_may_claim_it(
    make_http: HttpFactory, pkce: Pkce
) -> None:
    http = await make_http(**ALLOW_CURSOR)
    client_id = await registered_client_id(http)
    first = await http.get("/authorize", params=authorize_params(client_id, pkce, redirect_uri=CURSOR))
    login = await sign_in(http, first.headers["location"])
    assert urlsplit(login.headers["location"]).path == "/consent"
    page = await http.get(login.headers["location"])
    assert page.status_code == 200
    assert f'<strong class="mono">{CURSOR}</strong>' in page.text  # the link itself, not a "host"
    assert "an app on your device" in page.text
    assert "any app can register it" in page.text  # the warning
    assert "a program on your own computer" not in page.text  # no loopback redirect here
    approved = await decide(http, login.headers["location"])
    assert approved.headers["location"].startswith(f"{CURSOR}?code=")


async def test_the_consent_page_for_a_web_redirect_has_no_app_link_warning(
    http: httpx2.AsyncClient, pkce: Pkce
) -> None:
    client_id = await registered_client_id(
        http, redirect_uris=["https://app.example/cb"], application_type="web", client_name="Web app"
    )
    params = authorize_params(client_id, pkce, redirect_uri="https://app.example/cb")
    login = await sign_in(http, (await http.get("/authorize", params=params)).headers["location"])
    page = await http.get(login.headers["location"])
    assert "app.example" in page.text
    assert "any app can register it" not in page.text
