"""Authorization server metadata (requirements 2.1, AS-01..AS-08), over HTTP on both stores."""

from __future__ import annotations

import uuid

import httpx2
import pytest

from shared.scopes import SUPPORTED_SCOPES
from tests.integration.auth.conftest import HttpFactory
from tests.integration.auth.helpers import ISSUER

ROOT_WELL_KNOWN = ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration")
PATH_ISSUER = f"{ISSUER}/t1"
# Absolute: the test client's base URL is the issuer, and a path issuer's base has a path.
PATH_WELL_KNOWN = (
    f"{ISSUER}/.well-known/oauth-authorization-server/t1",
    f"{ISSUER}/.well-known/openid-configuration/t1",
    f"{ISSUER}/t1/.well-known/openid-configuration",
)


@pytest.mark.parametrize("path", ROOT_WELL_KNOWN)
async def test_both_discovery_documents_answer_200_json_with_the_exact_issuer(
    http: httpx2.AsyncClient, path: str
) -> None:
    response = await http.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["issuer"] == ISSUER  # AS-01, AS-02: byte-identical, no trailing slash


async def test_a_path_issuer_is_served_at_every_derived_well_known_url_with_the_same_issuer(
    make_http: HttpFactory,
) -> None:
    http = await make_http(auth_issuer_url=PATH_ISSUER)
    for path in PATH_WELL_KNOWN:  # AS-02 (path insertion), AS-08 (OIDC variants agree)
        response = await http.get(path)
        assert response.status_code == 200, path
        assert response.json()["issuer"] == PATH_ISSUER
    assert (await http.get(f"{ISSUER}/.well-known/oauth-authorization-server")).status_code == 404


async def test_a_path_issuers_endpoints_all_live_under_its_path_and_answer(make_http: HttpFactory) -> None:
    http = await make_http(auth_issuer_url=PATH_ISSUER)
    document = (await http.get(PATH_WELL_KNOWN[0])).json()
    for field in ("authorization_endpoint", "token_endpoint", "registration_endpoint", "jwks_uri"):
        assert document[field].startswith(f"{PATH_ISSUER}/")
    assert (await http.get(document["jwks_uri"])).status_code == 200
    assert (await http.post(document["registration_endpoint"], json={})).status_code == 400
    assert (await http.get(document["authorization_endpoint"])).status_code == 400


async def test_the_document_has_the_required_fields_and_only_supported_values(
    http: httpx2.AsyncClient,
) -> None:
    document = (await http.get(ROOT_WELL_KNOWN[0])).json()
    assert document["authorization_endpoint"] == f"{ISSUER}/authorize"  # AS-03
    assert document["token_endpoint"] == f"{ISSUER}/token"
    assert document["registration_endpoint"] == f"{ISSUER}/register"
    assert document["introspection_endpoint"] == f"{ISSUER}/introspect"
    assert document["revocation_endpoint"] == f"{ISSUER}/revoke"
    assert document["jwks_uri"] == f"{ISSUER}/jwks"
    assert document["response_types_supported"] == ["code"]
    assert document["code_challenge_methods_supported"] == ["S256"]  # AS-04
    assert document["grant_types_supported"] == ["authorization_code", "refresh_token", "client_credentials"]
    assert set(document["token_endpoint_auth_methods_supported"]) == {
        "none",
        "client_secret_basic",
        "client_secret_post",
    }
    assert document["introspection_endpoint_auth_methods_supported"]
    assert document["revocation_endpoint_auth_methods_supported"]
    assert document["scopes_supported"] == list(SUPPORTED_SCOPES)
    assert document["client_id_metadata_document_supported"] is True  # AS-06
    assert document["authorization_response_iss_parameter_supported"] is True  # AS-07


async def test_no_removed_grant_or_response_type_is_advertised(http: httpx2.AsyncClient) -> None:
    document = (await http.get(ROOT_WELL_KNOWN[1])).json()
    assert "implicit" not in document["grant_types_supported"]
    assert "password" not in document["grant_types_supported"]
    assert "token" not in document["response_types_supported"]
    assert document["code_challenge_methods_supported"] == ["S256"]  # AS-04 in OIDC discovery too


async def test_every_advertised_endpoint_answers(http: httpx2.AsyncClient) -> None:
    document = (await http.get(ROOT_WELL_KNOWN[0])).json()
    answers = {
        "authorization_endpoint": await http.get(document["authorization_endpoint"]),
        "token_endpoint": await http.post(document["token_endpoint"], data={}),
        "registration_endpoint": await http.post(document["registration_endpoint"], json={}),
        "introspection_endpoint": await http.post(document["introspection_endpoint"], data={}),
        "revocation_endpoint": await http.post(document["revocation_endpoint"], data={}),
        "jwks_uri": await http.get(document["jwks_uri"]),
    }
    for name, response in answers.items():  # AS-05: advertised means served
        assert response.status_code not in (404, 405, 500), (name, response.status_code)


async def test_an_https_issuer_advertises_only_https_urls(make_http: HttpFactory) -> None:
    http = await make_http(auth_issuer_url="https://as.example.com")
    document = (await http.get(ROOT_WELL_KNOWN[0])).json()
    urls = [value for value in document.values() if isinstance(value, str) and "://" in value]
    assert urls
    assert all(url.startswith("https://as.example.com") for url in urls)


async def test_metadata_is_readable_from_any_origin(http: httpx2.AsyncClient) -> None:
    response = await http.get(ROOT_WELL_KNOWN[0], headers={"Origin": "https://app.example"})
    assert response.headers["access-control-allow-origin"] == "*"
    preflight = await http.options(
        ROOT_WELL_KNOWN[0],
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "mcp-protocol-version",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "mcp-protocol-version" in preflight.headers["access-control-allow-headers"].lower()


@pytest.mark.parametrize("version", ["2025-06-18", "2025-11-25", "2026-07-28", "1999-01-01"])
async def test_an_mcp_protocol_version_header_does_not_change_the_answer(
    http: httpx2.AsyncClient, version: str
) -> None:
    response = await http.get(ROOT_WELL_KNOWN[0], headers={"MCP-Protocol-Version": version})
    assert response.status_code == 200
    assert response.json()["issuer"] == ISSUER


async def test_metadata_is_get_only(http: httpx2.AsyncClient) -> None:
    assert (await http.post(ROOT_WELL_KNOWN[0], json={})).status_code == 405


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_the_standalone_app_serves_metadata_health_and_the_login_flow_entry(
    request: pytest.FixtureRequest, backend: str
) -> None:
    from auth_server.app import create_auth_app
    from tests.integration.auth.helpers import make_settings

    overrides: dict[str, object] = {"auth_mode": "external", "auth_port": 3001}
    if backend == "redis":
        overrides["redis_url"] = request.getfixturevalue("redis_url")
        overrides["redis_key_prefix"] = f"test:{uuid.uuid4().hex}:"
    settings = make_settings(**overrides)
    app = create_auth_app(settings)
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=settings.issuer) as http:
        assert settings.issuer == "http://127.0.0.1:3001"
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/readyz")).status_code == 200
        document = (await http.get(ROOT_WELL_KNOWN[0])).json()
        assert document["issuer"] == settings.issuer
        registered = await http.post(
            "/register",
            json={"redirect_uris": ["http://127.0.0.1:1/cb"], "token_endpoint_auth_method": "none"},
        )
        assert registered.status_code == 201


async def test_internal_mode_mounts_the_same_authorization_server_in_the_mcp_app() -> None:
    from mcp_server.app import create_app
    from tests.integration.auth.helpers import make_settings

    settings = make_settings()
    app = create_app(settings)
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=settings.issuer) as http:
        document = (await http.get(ROOT_WELL_KNOWN[0])).json()
        assert document["issuer"] == ISSUER
        response = await http.get("/authorize", params={"client_id": "unknown"})
        assert response.status_code == 400
        assert response.headers["x-frame-options"] == "DENY"
