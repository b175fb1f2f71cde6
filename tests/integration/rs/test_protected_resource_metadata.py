"""RS-01..RS-08, TR-04: RFC 9728 protected resource metadata, as a client discovers it."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx2
import pytest

from mcp_server.protection.metadata import WELL_KNOWN
from tests.integration.rs.conftest import LEGACY, Rs, StartRs, initialize_body, legacy_headers

PATH_INSERTED = WELL_KNOWN + "/mcp"


def challenge_params(header: str) -> dict[str, str]:
    assert header.startswith("Bearer ")
    params: dict[str, str] = {}
    for part in header[len("Bearer ") :].split('", '):
        name, _, value = part.partition("=")
        params[name.strip()] = value.strip().strip('"')
    return params


@pytest.mark.parametrize("path", [PATH_INSERTED, WELL_KNOWN])
async def test_metadata_is_served_without_authentication_as_json(rs: Rs, path: str) -> None:
    response = await rs.http.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert isinstance(response.json(), dict)


async def test_resource_is_exactly_the_url_clients_call(rs: Rs) -> None:
    document = (await rs.http.get(PATH_INSERTED)).json()
    assert document["resource"] == f"{rs.url}/mcp"
    assert "#" not in document["resource"]
    assert not document["resource"].endswith("/")
    # the well-known suffix was inserted into exactly that URL
    parts = urlsplit(document["resource"])
    assert f"{parts.scheme}://{parts.netloc}{WELL_KNOWN}{parts.path}" == f"{rs.url}{PATH_INSERTED}"


async def test_authorization_servers_name_the_issuer_of_the_as_metadata_they_resolve_to(rs: Rs) -> None:
    document = (await rs.http.get(PATH_INSERTED)).json()
    assert document["authorization_servers"] == [rs.settings.issuer]
    for issuer in document["authorization_servers"]:
        async with httpx2.AsyncClient() as client:
            as_metadata = (await client.get(issuer + "/.well-known/oauth-authorization-server")).json()
        assert as_metadata["issuer"] == issuer


async def test_scopes_supported_are_the_baseline_without_offline_access_or_wildcards(rs: Rs) -> None:
    scopes = (await rs.http.get(PATH_INSERTED)).json()["scopes_supported"]
    assert scopes == ["mcp:tools:read", "mcp:resources:read", "mcp:prompts:read", "notes:read"]
    assert not {"offline_access", "*", "all"} & set(scopes)


async def test_only_the_header_bearer_method_is_advertised_and_urls_are_https_or_loopback(rs: Rs) -> None:
    document: dict[str, Any] = (await rs.http.get(PATH_INSERTED)).json()
    assert document["bearer_methods_supported"] == ["header"]
    assert document["resource_name"]
    urls = [document["resource"], *document["authorization_servers"]]
    for url in urls:
        parts = urlsplit(url)
        assert parts.scheme == "https" or parts.hostname in ("127.0.0.1", "localhost", "::1"), url


async def test_the_401_challenge_points_at_metadata_that_answers(rs: Rs) -> None:
    response = await rs.http.post("/mcp", json=initialize_body(), headers=legacy_headers(None))
    assert response.status_code == 401
    params = challenge_params(response.headers["www-authenticate"])
    assert params["resource_metadata"] == f"{rs.url}{PATH_INSERTED}"
    fetched = await rs.http.get(params["resource_metadata"])
    assert fetched.status_code == 200
    assert fetched.json()["resource"] == rs.mcp_url


async def test_metadata_answers_cors_preflight_and_simple_requests_from_any_origin(rs: Rs) -> None:
    preflight = await rs.http.options(
        PATH_INSERTED,
        headers={
            "origin": "https://somewhere.example",
            "access-control-request-method": "GET",
            "access-control-request-headers": "mcp-protocol-version",
        },
    )
    assert 200 <= preflight.status_code < 300
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "mcp-protocol-version" in preflight.headers["access-control-allow-headers"].lower()
    simple = await rs.http.get(PATH_INSERTED, headers={"origin": "https://somewhere.example"})
    assert simple.status_code == 200
    assert simple.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize("version_header", [None, LEGACY, "2025-03-26", "1999-01-01"])
async def test_discovery_needs_neither_a_token_nor_a_protocol_version(
    rs: Rs, version_header: str | None
) -> None:
    headers = {"mcp-protocol-version": version_header} if version_header else {}
    for path in (PATH_INSERTED, WELL_KNOWN):
        assert (await rs.http.get(path, headers=headers)).status_code == 200


async def test_without_authentication_there_is_no_protected_resource_metadata(start_rs: StartRs) -> None:
    rs = await start_rs("jwt", auth_mode="none")
    assert (await rs.http.get(PATH_INSERTED)).status_code == 404
