"""Dynamic client registration (requirements 2.5, DR-01..DR-09), over HTTP."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from shared.storage.base import Store
from tests.integration.auth.conftest import HttpFactory
from tests.integration.auth.flow_helpers import authorize_params, new_pkce, register

DR01_BODY: dict[str, Any] = {
    "redirect_uris": ["http://127.0.0.1:3000/cb"],
    "token_endpoint_auth_method": "none",
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
    "client_name": "t",
    "application_type": "native",
}


def with_(**changes: Any) -> dict[str, Any]:
    return {**DR01_BODY, **changes}


async def test_a_public_native_client_registers_and_gets_its_effective_metadata_back(
    http: httpx2.AsyncClient,
) -> None:
    response = await http.post("/register", json=DR01_BODY)
    assert response.status_code == 201  # DR-01
    body = response.json()
    assert body["client_id"]
    assert isinstance(body["client_id_issued_at"], int)
    for name, value in DR01_BODY.items():  # DR-02: all registered metadata
        assert body[name] == value
    assert "client_secret" not in body  # DR-02/DR-03: public clients get no secret
    assert "client_secret_expires_at" not in body


async def test_the_registration_response_is_never_cached(http: httpx2.AsyncClient) -> None:
    response = await http.post("/register", json=DR01_BODY)
    assert response.headers["cache-control"] == "no-store"  # DR-09


async def test_a_confidential_client_gets_a_secret_once_that_never_expires(
    http: httpx2.AsyncClient, store: Store
) -> None:
    body = with_(token_endpoint_auth_method="client_secret_basic")
    response = await http.post("/register", json=body)
    assert response.status_code == 201
    registered = response.json()
    assert len(registered["client_secret"]) >= 43
    assert registered["client_secret_expires_at"] == 0
    assert response.headers["cache-control"] == "no-store"
    stored = await store.get(f"auth:client:{registered['client_id']}")
    assert stored is not None
    assert registered["client_secret"] not in stored  # only its digest is kept


async def test_a_client_that_names_no_auth_method_is_confidential_per_rfc_7591(
    http: httpx2.AsyncClient,
) -> None:
    body = {key: value for key, value in DR01_BODY.items() if key != "token_endpoint_auth_method"}
    registered = (await http.post("/register", json=body)).json()
    assert registered["token_endpoint_auth_method"] == "client_secret_basic"
    assert "client_secret" in registered


async def test_the_secret_issued_at_registration_authenticates_the_client(http: httpx2.AsyncClient) -> None:
    registered = await register(http, token_endpoint_auth_method="client_secret_basic")
    form = {"grant_type": "refresh_token", "refresh_token": "not-a-refresh-token"}
    ok = await http.post(
        "/token", data=form, auth=httpx2.BasicAuth(registered["client_id"], registered["client_secret"])
    )
    wrong = await http.post(
        "/token", data=form, auth=httpx2.BasicAuth(registered["client_id"], "not-the-secret")
    )
    assert ok.status_code == 400, ok.text  # authenticated: only the refresh token is wrong
    assert ok.json()["error"] == "invalid_grant"
    assert wrong.status_code == 401


async def test_generated_client_ids_are_unique_and_never_look_like_a_metadata_url(
    http: httpx2.AsyncClient,
) -> None:
    ids = {(await register(http))["client_id"] for _ in range(5)}
    assert len(ids) == 5
    assert not any(client_id.startswith(("https://", "http://")) for client_id in ids)  # DR-08


@pytest.mark.parametrize(
    "redirect_uris",
    [
        ["http://evil.example/cb"],
        ["javascript:alert(1)"],
        ["data:text/html,hi"],
        ["file:///etc/passwd"],
        ["https://a.example/cb#f"],
        ["/cb"],
        [],
        ["https://user:pw@a.example/cb"],
        ["http://127.0.0.1.evil.com/cb"],
        ["https://a.example/cb", "custom-app:/cb"],
        "https://a.example/cb",
        [42],
    ],
    ids=repr,
)
async def test_bad_redirect_uris_are_invalid_redirect_uri(
    http: httpx2.AsyncClient, redirect_uris: Any
) -> None:
    response = await http.post("/register", json=with_(redirect_uris=redirect_uris))
    assert response.status_code == 400  # DR-04
    assert response.json()["error"] == "invalid_redirect_uri"


async def test_the_code_grant_without_redirect_uris_is_invalid_redirect_uri(http: httpx2.AsyncClient) -> None:
    body = {key: value for key, value in DR01_BODY.items() if key != "redirect_uris"}
    response = await http.post("/register", json=body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_redirect_uri"


@pytest.mark.parametrize(
    "changes",
    [
        {"grant_types": ["implicit"]},
        {"grant_types": ["password"]},
        {"grant_types": ["authorization_code", "urn:ietf:params:oauth:grant-type:device_code"]},
        {"response_types": ["token"]},
        {"response_types": ["code", "id_token"]},
        {"token_endpoint_auth_method": "private_key_jwt"},
        {"token_endpoint_auth_method": "client_secret_jwt"},
        {"scope": "notes:read admin"},
        {"application_type": "desktop"},
        {"application_type": "web"},  # with a loopback redirect URI: documented rejection (DR-06)
        {"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"},
        {"client_name": ""},
        {"client_uri": "javascript:alert(1)"},
        {"grant_types": "authorization_code"},
    ],
    ids=repr,
)
async def test_invalid_or_inconsistent_metadata_is_invalid_client_metadata(
    http: httpx2.AsyncClient, changes: dict[str, Any]
) -> None:
    response = await http.post("/register", json=with_(**changes))
    assert response.status_code == 400  # DR-05
    assert response.json()["error"] == "invalid_client_metadata"
    assert response.json()["error_description"]


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'"text"', b"{" + b" " * 20_000 + b"}"], ids=repr)
async def test_a_body_that_is_not_a_small_json_object_is_invalid_client_metadata(
    http: httpx2.AsyncClient, body: bytes
) -> None:
    response = await http.post("/register", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client_metadata"


async def test_a_web_client_registers_https_redirect_uris(http: httpx2.AsyncClient) -> None:
    body = with_(application_type="web", redirect_uris=["https://app.example/cb"])
    response = await http.post("/register", json=body)
    assert response.status_code == 201  # DR-06
    assert response.json()["application_type"] == "web"


async def test_a_client_omitting_application_type_gets_native_for_loopback_and_web_otherwise(
    http: httpx2.AsyncClient,
) -> None:
    loopback = {key: value for key, value in DR01_BODY.items() if key != "application_type"}
    https = {**loopback, "redirect_uris": ["https://app.example/cb"]}
    assert (await register(http, **loopback, application_type=None))["application_type"] == "native"
    assert (await register(http, **https, application_type=None))["application_type"] == "web"


async def test_unknown_metadata_members_are_ignored(http: httpx2.AsyncClient) -> None:
    response = await http.post("/register", json=with_(software_statement="x", contacts=["a@b"], foo=1))
    assert response.status_code == 201
    assert "foo" not in response.json()


async def test_a_registered_client_can_start_an_authorization_at_once(http: httpx2.AsyncClient) -> None:
    client = await register(http)
    response = await http.get("/authorize", params=authorize_params(client["client_id"], new_pkce()))
    assert response.status_code == 302
    assert "/login?" in response.headers["location"]


async def test_registration_is_rate_limited_with_retry_after(make_http: HttpFactory) -> None:
    http = await make_http(rate_limit_per_minute=5)
    statuses = [(await http.post("/register", json=DR01_BODY)).status_code for _ in range(7)]
    assert statuses[:5] == [201] * 5  # DR-07
    limited = await http.post("/register", json=DR01_BODY)
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1


async def test_registration_allows_cross_origin_calls(http: httpx2.AsyncClient) -> None:
    preflight = await http.options(
        "/register",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 200  # Starlette's CORSMiddleware
    assert "POST" in preflight.headers["access-control-allow-methods"]
    response = await http.post("/register", json=DR01_BODY, headers={"Origin": "https://app.example"})
    assert response.headers["access-control-allow-origin"] == "*"
    failed = await http.post("/register", json={}, headers={"Origin": "https://app.example"})
    assert failed.headers["access-control-allow-origin"] == "*"


async def test_error_descriptions_are_printable_ascii_without_quotes_even_when_quoting_input(
    http: httpx2.AsyncClient,
) -> None:
    response = await http.post("/register", json=with_(scope='notes:read "é\\ß'))
    description = response.json()["error_description"]
    assert description.isascii()
    assert '"' not in description
    assert "\\" not in description
