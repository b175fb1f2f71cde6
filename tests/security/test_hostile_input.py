"""Hostile input stays a 4xx (issue 9 item 10): JSON bombs, redirect URIs a browser reads
differently, and names a client gives itself.

Before the fix: `[[[[...]]]]` a few thousand levels deep in a registration body answered 500 (a
RecursionError out of `json.loads`), in a JWT header 503 with a traceback in the log; a lone
surrogate in a client name (`"\\ud800"`) answered 500 (it could not be encoded to be stored);
redirect URIs with a backslash, a percent-encoded or numeric host or Unicode registered although a
browser reads them differently than `urlsplit` (`https://evil.example\\good.example/cb` is a page
on evil.example to a browser, while our page named "evil.example\\good.example"); and a registered
client calling itself "Claude Code" looked exactly like the real one.

Every test attacks real servers: the authorization server for what it parses and shows (in
internal mode on Redis, where a stored name must really encode: the parsing and the pages are the
same code in every mode and store, tests/integration/auth/conftest.py), real server processes in
external JWT mode for the JWT header.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx2
import pytest

from auth_server.models import Client
from shared.storage.base import Store
from tests.e2e.oauth_flow import initialize, mint
from tests.e2e.servers import Deployment, build_deployment
from tests.integration.auth.conftest import HttpFactory
from tests.integration.auth.flow_helpers import authorize_params, new_pkce, register, sign_in
from tests.security.document_host import DocumentHost

NESTING = [20, 150, 250, 5000]  # past our document limit, jiter's limit, and json's recursion


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def registration_body(**members: str) -> bytes:
    """A registration body with raw JSON text spliced in as member values."""
    base = '{"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"'
    extra = "".join(f', "{name}": {raw}' for name, raw in members.items())
    return (base + extra + "}").encode()


# -- JSON bombs -------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", NESTING)
async def test_deeply_nested_json_in_a_registration_body_is_a_400(
    http: httpx2.AsyncClient, depth: int
) -> None:
    response = await http.post(
        "/register",
        content=registration_body(software_statement=nested(depth)),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_client_metadata"
    assert "nested" in response.json()["error_description"]


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(registration_body(client_name='"\\ud800"'), id="lone-surrogate"),
        pytest.param(registration_body(client_name="NaN"), id="nan"),
        pytest.param(registration_body(client_name="1e999999"), id="infinity"),
        pytest.param(b'{"redirect_uris": ["http://127.0.0.1/cb"], "client_name": "\xff"}', id="not-utf-8"),
        pytest.param(registration_body() + b"garbage", id="trailing-garbage"),
        pytest.param(b"\xef\xbb\xbf" + registration_body(), id="byte-order-mark"),
    ],
)
async def test_json_that_is_not_json_is_a_400(http: httpx2.AsyncClient, raw: bytes) -> None:
    response = await http.post("/register", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_client_metadata"


@pytest.mark.parametrize("depth", NESTING)
async def test_a_deeply_nested_client_metadata_document_is_an_error_page(
    http: httpx2.AsyncClient, document_host: DocumentHost, depth: int
) -> None:
    url = document_host.client_document(software_statement=json.loads(nested(min(depth, 150))))
    if depth > 150:  # deeper than json.dumps itself can write: splice the text in
        url = document_host.serve(
            lambda url: (
                f'{{"client_id": "{url}", "client_name": "x", "redirect_uris": '
                f'["http://127.0.0.1:53124/callback"], "x": {nested(depth)}}}'
            ).encode()
        )
    response = await http.get("/authorize", params=authorize_params(url, new_pkce()))
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "location" not in response.headers
    assert document_host.hits(url) == 1


async def test_a_lone_surrogate_in_a_client_metadata_document_is_an_error_page(
    http: httpx2.AsyncClient, document_host: DocumentHost
) -> None:
    url = document_host.serve(
        lambda url: (
            f'{{"client_id": "{url}", "client_name": "\\ud800", '
            '"redirect_uris": ["http://127.0.0.1:53124/callback"]}'
        ).encode()
    )
    response = await http.get("/authorize", params=authorize_params(url, new_pkce()))
    assert response.status_code == 400, response.text
    assert "location" not in response.headers


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def forged_jwt(header_json: str) -> str:
    return f"{b64url(header_json.encode())}.{b64url(b'{}')}.{b64url(b'not-a-signature')}"


@pytest.fixture(scope="module")
def jwt_deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """External mode with TOKEN_FORMAT=jwt: the MCP server parses every JWT header itself."""
    deployment = build_deployment(
        "external", "memory", tmp_path_factory.mktemp("jwt"), env={"TOKEN_FORMAT": "jwt"}
    ).start()
    yield deployment
    deployment.stop()


@pytest.mark.parametrize(
    "header",
    [
        pytest.param('{"alg": "RS256", "typ": "at+jwt", "x": ' + nested(20) + "}", id="nested-20"),
        pytest.param('{"alg": "RS256", "typ": "at+jwt", "x": ' + nested(1000) + "}", id="nested-1000"),
        pytest.param('{"alg": "RS256", "typ": "at+jwt", "x": ' + nested(5000) + "}", id="nested-5000"),
        pytest.param('{"alg": "RS256", "typ": "at+jwt", "kid": "\\ud800"}', id="lone-surrogate"),
        pytest.param('{"alg": "RS256", "typ": "at+jwt", "exp": NaN}', id="nan"),
        pytest.param('{"alg": "RS256", "alg": "none", "typ": "at+jwt"}', id="duplicate-alg"),
    ],
)
def test_a_hostile_jwt_header_is_a_401_never_a_503(jwt_deployment: Deployment, header: str) -> None:
    response = initialize(jwt_deployment.mcp_url, forged_jwt(header))
    assert response.status_code == 401, response.text
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert "Traceback" not in jwt_deployment.logs()


def test_a_valid_jwt_still_works_next_to_the_hostile_ones(jwt_deployment: Deployment) -> None:
    token = mint(jwt_deployment.mcp_url).tokens.access_token
    assert token.count(".") == 2  # a JWT, checked by the same header parser
    assert initialize(jwt_deployment.mcp_url, token).status_code == 200


@pytest.mark.parametrize("mode", ["internal", "external"])
def test_a_json_rpc_body_the_scope_check_cannot_read_is_refused_before_any_tool(
    start_deployment: Any, mode: str
) -> None:
    """The scope check and the SDK parse the body with different parsers: what the check cannot
    read never reaches the SDK (whatever the SDK would make of it) and no tool runs."""
    deployment = start_deployment(mode)
    token = mint(deployment.mcp_url, scope="mcp:tools:read").tokens.access_token  # no notes:write
    headers = {
        "authorization": f"Bearer {token}",
        "accept": "application/json, text/event-stream",
        "content-type": "application/json",
        "mcp-protocol-version": "2025-11-25",
    }
    call = '{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "notes_add", '
    for arguments in ('{"text": "x", "pad": ' + nested(300) + "}", '{"text": "\\ud800"}', '{"text": NaN}'):
        with httpx2.Client(timeout=10, trust_env=False) as client:
            response = client.post(
                deployment.mcp_url, content=(call + f'"arguments": {arguments}}}}}').encode(), headers=headers
            )
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == -32700


# -- redirect URIs a browser reads differently --------------------------------------------------------

AMBIGUOUS_REDIRECT_URIS = [
    pytest.param("https://good.example\\@evil.example/cb", id="backslash-userinfo"),
    pytest.param("https://evil.example\\good.example/cb", id="backslash-path"),
    pytest.param("http://127.0.0.1\\.evil.example/cb", id="backslash-loopback"),
    pytest.param("https://good.example/cb\\..\\evil", id="backslash-in-path"),
    pytest.param("https://good.example:443@evil.example/cb", id="userinfo"),
    pytest.param("https://%65vil.example/cb", id="percent-encoded-host"),
    pytest.param("https://exa\u00admple.com/cb", id="soft-hyphen"),
    pytest.param("https://ex\u0430mple.com/cb", id="cyrillic-a"),
    pytest.param("https://good.example/c\u202eb", id="right-to-left-override"),
    pytest.param("https://good.example/\tcb", id="tab"),
    pytest.param("https://good.example/\x00cb", id="nul"),
    pytest.param("https://0x7f000001/cb", id="hex-ip"),
    pytest.param("https://2130706433/cb", id="decimal-ip"),
    pytest.param("https://127.1/cb", id="short-ip"),
    pytest.param("https://evil.example./cb", id="trailing-dot"),
    pytest.param("https://[fe80::1%25eth0]/cb", id="ipv6-zone"),
    pytest.param("https:/\\evil.example/cb", id="slash-backslash"),
]


@pytest.mark.parametrize("redirect_uri", AMBIGUOUS_REDIRECT_URIS)
async def test_an_ambiguous_redirect_uri_is_refused_at_registration(
    http: httpx2.AsyncClient, redirect_uri: str
) -> None:
    response = await http.post(
        "/register",
        json={"redirect_uris": [redirect_uri], "token_endpoint_auth_method": "none", "client_name": "x"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_redirect_uri"


@pytest.mark.parametrize("redirect_uri", AMBIGUOUS_REDIRECT_URIS[:6])
async def test_an_ambiguous_redirect_uri_is_refused_in_a_client_metadata_document(
    http: httpx2.AsyncClient, document_host: DocumentHost, redirect_uri: str
) -> None:
    url = document_host.client_document(redirect_uris=[redirect_uri])
    response = await http.get(
        "/authorize", params=authorize_params(url, new_pkce(), redirect_uri=redirect_uri)
    )
    assert response.status_code == 400, response.text
    assert "location" not in response.headers


@pytest.mark.parametrize("redirect_uri", AMBIGUOUS_REDIRECT_URIS[:6])
async def test_an_ambiguous_redirect_uri_registered_before_the_rule_is_refused_at_authorize(
    http: httpx2.AsyncClient, store: Store, redirect_uri: str
) -> None:
    client = Client(client_id=f"legacy-{abs(hash(redirect_uri))}", redirect_uris=(redirect_uri,))
    await store.set(f"auth:client:{client.client_id}", client.model_dump_json())
    response = await http.get(
        "/authorize", params=authorize_params(client.client_id, new_pkce(), redirect_uri=redirect_uri)
    )
    assert response.status_code == 400, response.text
    assert "location" not in response.headers


async def test_pages_show_the_host_as_parsed(http: httpx2.AsyncClient) -> None:
    client_id = (await register(http, redirect_uris=["https://App.Example:8443/cb"], application_type="web"))[
        "client_id"
    ]
    params = authorize_params(client_id, new_pkce(), redirect_uri="https://App.Example:8443/cb", scope="nope")
    page = await http.get("/authorize", params=params)  # an error for an unknown scope: an interstitial
    assert page.status_code == 400
    assert "Return to app.example:8443" in page.text


async def test_a_refused_private_use_redirect_names_the_scheme_and_the_setting(
    http: httpx2.AsyncClient,
) -> None:
    """Issue 15 item 6: Cursor's registration fails without NATIVE_REDIRECT_SCHEMES; say so."""
    response = await http.post(
        "/register",
        json={
            "redirect_uris": ["cursor://anysphere.cursor-mcp/oauth/callback"],
            "token_endpoint_auth_method": "none",
            "application_type": "native",
        },
    )
    assert response.status_code == 400
    description = response.json()["error_description"]
    assert "cursor" in description
    assert "NATIVE_REDIRECT_SCHEMES" in description


async def test_a_private_use_redirect_at_authorize_names_the_scheme_and_the_setting(
    http: httpx2.AsyncClient, store: Store
) -> None:
    cursor = "cursor://anysphere.cursor-mcp/oauth/callback"
    client = Client(client_id="legacy-cursor-client", redirect_uris=(cursor,))  # the scheme was allowed once
    await store.set(f"auth:client:{client.client_id}", client.model_dump_json())
    page = await http.get(
        "/authorize", params=authorize_params(client.client_id, new_pkce(), redirect_uri=cursor)
    )
    assert page.status_code == 400
    assert "cursor" in page.text
    assert "NATIVE_REDIRECT_SCHEMES" in page.text


# -- names a client gives itself --------------------------------------------------------------------


def shown_name(page: str) -> str:
    match = re.search(r"<strong>(?P<name>[^<]*)</strong>(?P<tag> <span class=\"tag unverified\">)?", page)
    assert match, page[:2000]
    return match["name"] + (" [unverified]" if match["tag"] else "")


async def test_a_registered_client_calling_itself_claude_code_is_shown_as_unverified(
    http: httpx2.AsyncClient,
) -> None:
    client_id = (await register(http, client_name="Claude Code"))["client_id"]
    start = await http.get("/authorize", params=authorize_params(client_id, new_pkce()))
    login = await http.get(start.headers["location"])
    assert shown_name(login.text) == "Claude Code [unverified]"

    to_consent = await sign_in(http, start.headers["location"])
    assert urlsplit(to_consent.headers["location"]).path == "/consent"
    consent = await http.get(to_consent.headers["location"])
    assert shown_name(consent.text) == "Claude Code [unverified]"
    assert "chose this name itself" in consent.text


async def test_a_metadata_document_name_is_unverified_and_its_host_is_shown(
    http: httpx2.AsyncClient, document_host: DocumentHost
) -> None:
    url = document_host.client_document(client_name="Claude Code")
    response = await http.get("/authorize", params=authorize_params(url, new_pkce()))
    login = await http.get(response.headers["location"])
    assert shown_name(login.text) == "Claude Code [unverified]"


async def test_a_configured_clients_name_is_shown_as_the_operator_gave_it(make_http: HttpFactory) -> None:
    configured = {
        "client_id": "claude-code",
        "client_name": "Claude Code",
        "redirect_uris": ["http://127.0.0.1/callback"],
        "token_endpoint_auth_method": "none",
    }
    http = await make_http(auth_clients=[configured])
    params = authorize_params("claude-code", new_pkce(), redirect_uri="http://127.0.0.1:7000/callback")
    login = await http.get((await http.get("/authorize", params=params)).headers["location"])
    assert shown_name(login.text) == "Claude Code"


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("Claude\u200bCode", id="zero-width-space"),
        pytest.param("Claude Code\u202e lanoisseforP", id="right-to-left-override"),
        pytest.param("Claude\x00Code", id="nul"),
        pytest.param("Claude\u2028Code", id="line-separator"),
        pytest.param("Claude\u2066Code\u2069", id="bidi-isolate"),
    ],
)
async def test_a_name_with_invisible_or_direction_changing_characters_is_refused(
    http: httpx2.AsyncClient, document_host: DocumentHost, name: str
) -> None:
    """Such a name renders as another ("Claude Code" with a zero-width space, or reversed text);
    before the fix all of these registered (NUL included)."""
    registered = await http.post(
        "/register",
        json={
            "client_name": name,
            "redirect_uris": ["http://127.0.0.1/cb"],
            "token_endpoint_auth_method": "none",
        },
    )
    assert registered.status_code == 400, registered.text
    assert registered.json()["error"] == "invalid_client_metadata"
    url = document_host.client_document(client_name=name)
    page = await http.get("/authorize", params=authorize_params(url, new_pkce()))
    assert page.status_code == 400
    assert "location" not in page.headers
