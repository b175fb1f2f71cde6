"""Authorization server metadata (requirements 2.1, AS-01..AS-08), over HTTP, in every deployment."""

from __future__ import annotations

import httpx2
import pytest

from auth_server.clients.assertions import ALGORITHMS as ASSERTION_ALGORITHMS
from shared.scopes import CATALOGUE
from shared.settings import Settings
from tests.integration.auth.conftest import ALL_DEPLOYMENTS, HttpFactory
from tests.integration.auth.helpers import EXTERNAL_ISSUER, ISSUER, path_of, public_deployment

# In every deployment: what each mode's app serves and advertises differs (issuer, routes beside /mcp), and
# readiness pings the store.
DEPLOYMENTS = ALL_DEPLOYMENTS

ROOT_WELL_KNOWN = ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration")
# Where an issuer with the path /t1 publishes its metadata (RFC 8414 path insertion, both OIDC forms).
PATH_WELL_KNOWN = (
    "/.well-known/oauth-authorization-server/t1",
    "/.well-known/openid-configuration/t1",
    "/t1/.well-known/openid-configuration",
)


@pytest.mark.parametrize("path", ROOT_WELL_KNOWN)
async def test_both_discovery_documents_answer_200_json_with_the_exact_issuer(
    http: httpx2.AsyncClient, settings: Settings, path: str
) -> None:
    response = await http.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["issuer"] == settings.issuer  # AS-01, AS-02: byte-identical, no trailing slash


async def test_a_path_issuer_is_served_at_every_derived_well_known_url_with_the_same_issuer(
    make_http: HttpFactory, settings: Settings
) -> None:
    path_issuer = f"{settings.issuer}/t1"
    http = await make_http(auth_issuer_url=path_issuer)
    for path in PATH_WELL_KNOWN:  # AS-02 (path insertion), AS-08 (OIDC variants agree)
        response = await http.get(path)
        assert response.status_code == 200, path
        assert response.json()["issuer"] == path_issuer
    assert (await http.get("/.well-known/oauth-authorization-server")).status_code == 404


async def test_a_path_issuers_endpoints_all_live_under_its_path_and_answer(
    make_http: HttpFactory, settings: Settings
) -> None:
    path_issuer = f"{settings.issuer}/t1"
    http = await make_http(auth_issuer_url=path_issuer)
    document = (await http.get(PATH_WELL_KNOWN[0])).json()
    for field in ("authorization_endpoint", "token_endpoint", "registration_endpoint", "jwks_uri"):
        assert document[field].startswith(f"{path_issuer}/")
    assert (await http.get(path_of(document["jwks_uri"]))).status_code == 200
    assert (await http.post(path_of(document["registration_endpoint"]), json={})).status_code == 400
    assert (await http.get(path_of(document["authorization_endpoint"]))).status_code == 400


async def test_the_document_has_the_required_fields_and_only_supported_values(
    http: httpx2.AsyncClient, settings: Settings
) -> None:
    document = (await http.get(ROOT_WELL_KNOWN[0])).json()
    issuer = settings.issuer
    assert document["authorization_endpoint"] == f"{issuer}/authorize"  # AS-03
    assert document["token_endpoint"] == f"{issuer}/token"
    assert document["registration_endpoint"] == f"{issuer}/register"
    assert document["introspection_endpoint"] == f"{issuer}/introspect"
    assert document["revocation_endpoint"] == f"{issuer}/revoke"
    assert document["jwks_uri"] == f"{issuer}/jwks"
    assert document["response_types_supported"] == ["code"]
    assert document["code_challenge_methods_supported"] == ["S256"]  # AS-04
    assert document["grant_types_supported"] == ["authorization_code", "refresh_token", "client_credentials"]
    assert set(document["token_endpoint_auth_methods_supported"]) == {
        "none",
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",  # RFC 7523 client authentication (docs/agent-identity.md)
    }
    assert set(document["token_endpoint_auth_signing_alg_values_supported"]) == set(ASSERTION_ALGORITHMS)
    assert not {"none", "HS256", "HS384", "HS512"} & set(ASSERTION_ALGORITHMS)
    assert set(document["introspection_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
    }
    assert set(document["revocation_endpoint_auth_methods_supported"]) == set(
        document["token_endpoint_auth_methods_supported"]
    )
    assert "authorization_grant_profiles_supported" not in document  # no ENTERPRISE_IDP_ISSUERS here
    assert document["scopes_supported"] == list(CATALOGUE.names)
    assert document["client_id_metadata_document_supported"] is True  # AS-06
    assert document["authorization_response_iss_parameter_supported"] is True  # AS-07


async def test_no_removed_grant_or_response_type_is_advertised(http: httpx2.AsyncClient) -> None:
    document = (await http.get(ROOT_WELL_KNOWN[1])).json()
    assert "implicit" not in document["grant_types_supported"]
    assert "password" not in document["grant_types_supported"]
    assert "token" not in document["response_types_supported"]
    assert document["code_challenge_methods_supported"] == ["S256"]  # AS-04 in OIDC discovery too


async def test_every_advertised_endpoint_answers(http: httpx2.AsyncClient, settings: Settings) -> None:
    document = (await http.get(ROOT_WELL_KNOWN[0])).json()
    names = ("authorization", "token", "registration", "introspection", "revocation")
    endpoint = {name: path_of(document[f"{name}_endpoint"], settings.issuer) for name in names}
    answers = {
        "authorization_endpoint": await http.get(endpoint["authorization"]),
        "token_endpoint": await http.post(endpoint["token"], data={}),
        "registration_endpoint": await http.post(endpoint["registration"], json={}),
        "introspection_endpoint": await http.post(endpoint["introspection"], data={}),
        "revocation_endpoint": await http.post(endpoint["revocation"], data={}),
        "jwks_uri": await http.get(path_of(document["jwks_uri"], settings.issuer)),
    }
    for name, response in answers.items():  # AS-05: advertised means served
        assert response.status_code not in (404, 405, 500), (name, response.status_code)


async def test_an_https_issuer_advertises_only_https_urls(make_http: HttpFactory) -> None:
    http = await make_http(auth_issuer_url="https://as.example.com", **public_deployment())
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
    assert preflight.status_code == 200  # Starlette's CORSMiddleware
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "mcp-protocol-version" in preflight.headers["access-control-allow-headers"].lower()


@pytest.mark.parametrize("version", ["2025-06-18", "2025-11-25", "2026-07-28", "1999-01-01"])
async def test_an_mcp_protocol_version_header_does_not_change_the_answer(
    http: httpx2.AsyncClient, settings: Settings, version: str
) -> None:
    response = await http.get(ROOT_WELL_KNOWN[0], headers={"MCP-Protocol-Version": version})
    assert response.status_code == 200
    assert response.json()["issuer"] == settings.issuer


async def test_metadata_is_get_only(http: httpx2.AsyncClient) -> None:
    assert (await http.post(ROOT_WELL_KNOWN[0], json={})).status_code == 405


async def test_the_server_answers_health_and_readiness_checks(http: httpx2.AsyncClient) -> None:
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    assert (await http.get("/readyz")).json() == {"status": "ready"}


async def test_internal_mode_serves_the_as_beside_mcp_and_external_mode_serves_only_the_as(
    http: httpx2.AsyncClient, settings: Settings
) -> None:
    resource_metadata = await http.get("/.well-known/oauth-protected-resource/mcp")
    mcp = await http.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    if settings.auth_mode == "internal":  # one process: the protected resource names this AS
        assert settings.issuer == ISSUER
        assert resource_metadata.json()["authorization_servers"] == [settings.issuer]
        assert mcp.status_code == 401
    else:  # python -m auth_server: the AS alone, on its own origin
        assert settings.issuer == EXTERNAL_ISSUER
        assert resource_metadata.status_code == 404
        assert mcp.status_code == 404
