"""OAuth protocol attacks a registered client (anyone: registration is open) can try, and HTTP
framing attacks anyone can try, against the authorization server in every deployment
(internal/external x memory/redis). Each held when tried; each is kept here so it keeps holding.

- two client authentications in one token request (Basic and a body secret that differ),
  hoping the server checks one and uses the other;
- a PKCE downgrade: `code_challenge_method=plain`, or a challenge without a method (RFC 7636's
  default is plain), then the verifier equal to the challenge;
- a code presented by another client (its own credentials): refused, and the code is dead for
  its owner too (single use in the strongest sense);
- scope escalation at refresh: asking for a scope the grant never had;
- an open redirect through an error: an unregistered redirect URI with a request that fails;
- a resource indicator for another server at /authorize and at /token (mix-up);
- request smuggling: Transfer-Encoding and Content-Length together, two Content-Lengths;
- a Host header naming another server: the metadata still names the configured issuer.
"""

from __future__ import annotations

import asyncio
import secrets
from urllib.parse import urlsplit

import httpx2

from shared.settings import Settings
from shared.storage.base import Store
from tests.integration.auth.flow_helpers import authorize_params, callback_dict, new_pkce
from tests.integration.auth.helpers import (
    REDIRECT_URI,
    add_client,
    redeem,
    refresh,
    store_code,
    tokens_for,
)

ATTACKER_REDIRECT = "http://127.0.0.1:4444/steal"


async def test_two_client_authentications_in_one_request_are_refused(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store, confidential=True)
    code = await store_code(store, client, settings=settings)
    form = {
        "grant_type": "authorization_code",
        "code": code.code,
        "code_verifier": code.verifier,
        "redirect_uri": REDIRECT_URI,
        "client_id": client.client_id,
        "client_secret": "wrong-secret-in-the-body",
    }
    for auth in (client.basic(), httpx2.BasicAuth(client.client_id, "wrong-secret-in-the-header")):
        response = await http.post("/token", data=form, auth=auth)
        assert response.status_code in (400, 401), response.text
        assert response.json()["error"] in ("invalid_request", "invalid_client")
        assert "access_token" not in response.json()


async def test_a_pkce_downgrade_to_plain_is_refused(http: httpx2.AsyncClient, store: Store) -> None:
    client = await add_client(store)
    verifier = secrets.token_urlsafe(48)
    for method in ("plain", None):  # asked for, or RFC 7636's default when the method is left out
        params = authorize_params(
            client.client_id, new_pkce(), code_challenge=verifier, code_challenge_method=method
        )
        response = await http.get("/authorize", params=params)
        assert response.status_code in (302, 303, 400), response.text
        location = response.headers.get("location", "")
        if location.startswith(REDIRECT_URI):  # an error sent back to the client, never a login step
            assert callback_dict(location)["error"] == "invalid_request"
        else:
            assert response.status_code == 400
            assert "/login" not in location


async def test_a_code_redeemed_by_another_client_is_refused_and_dead_for_its_owner(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    owner, thief = await add_client(store), await add_client(store, confidential=True)
    code = await store_code(store, owner, settings=settings)
    stolen = await http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code.code,
            "code_verifier": code.verifier,
            "redirect_uri": REDIRECT_URI,
        },
        auth=thief.basic(),
    )
    assert stolen.status_code == 400
    assert stolen.json()["error"] == "invalid_grant"
    late = await redeem(http, code, owner)
    assert late.status_code == 400
    assert late.json()["error"] == "invalid_grant"


async def test_a_refresh_cannot_widen_the_grants_scope(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    tokens = await tokens_for(http, store, settings, client, scope=("mcp:tools:read",))
    wider = await refresh(http, tokens["refresh_token"], client, scope="mcp:tools:read notes:write")
    assert wider.status_code == 400
    assert wider.json()["error"] == "invalid_scope"
    same = await refresh(http, tokens["refresh_token"], client)  # the refused request consumed nothing
    assert same.status_code == 200
    assert same.json()["scope"] == "mcp:tools:read"


async def test_an_error_never_redirects_to_an_unregistered_uri(
    http: httpx2.AsyncClient, store: Store
) -> None:
    client = await add_client(store)
    for bad in ({"scope": "no-such-scope"}, {"response_type": "token"}, {"code_challenge": None}):
        params = authorize_params(client.client_id, new_pkce(), redirect_uri=ATTACKER_REDIRECT, **bad)
        response = await http.get("/authorize", params=params)
        assert response.status_code == 400, (bad, response.status_code)
        assert "location" not in response.headers
        assert 'href="http://127.0.0.1:4444' not in response.text  # shown as text, never a link
    unknown = authorize_params("no-such-client", new_pkce(), redirect_uri=ATTACKER_REDIRECT, scope="x")
    response = await http.get("/authorize", params=unknown)
    assert response.status_code == 400
    assert "location" not in response.headers


async def test_a_resource_indicator_for_another_server_is_refused(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    other = "https://evil.example/mcp"
    response = await http.get(
        "/authorize", params=authorize_params(client.client_id, new_pkce(), resource=other)
    )
    location = response.headers.get("location", "")
    assert location.startswith(REDIRECT_URI), (response.status_code, location, response.text[:300])
    assert callback_dict(location)["error"] == "invalid_target"

    code = await store_code(store, client, settings=settings)
    mixed = await redeem(http, code, client, resource=other)
    assert mixed.status_code == 400
    assert mixed.json()["error"] == "invalid_target"


async def raw_exchange(url: str, request: bytes) -> bytes:
    """Send bytes as they are; everything the server answers until it closes (or 5 s pass)."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(request)
        await writer.drain()
        received = b""
        try:
            async with asyncio.timeout(5):
                while chunk := await reader.read(65536):
                    received += chunk
        except TimeoutError:
            pass
        return received
    finally:
        writer.close()


async def test_smuggled_requests_are_refused_at_the_framing(as_url: str) -> None:
    host = urlsplit(as_url).netloc.encode()
    hidden = b"POST /register HTTP/1.1\r\nHost: " + host + b"\r\nContent-Length: 2\r\n\r\n{}"
    body = b"0\r\n\r\n" + hidden
    attacks = [
        b"POST /token HTTP/1.1\r\nHost: " + host + b"\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n" + body,
        b"POST /token HTTP/1.1\r\nHost: "
        + host
        + b"\r\nContent-Length: 5\r\nContent-Length: 50\r\n\r\n"
        + b"grant_type=x"
        + hidden,
    ]
    for attack in attacks:
        answer = await raw_exchange(as_url, attack)
        statuses = [line for line in answer.split(b"\r\n") if line.startswith(b"HTTP/1.1 ")]
        assert statuses, answer[:300]
        assert statuses[0].split()[1] == b"400", answer[:300]
        assert len(statuses) == 1, f"a second, smuggled request was answered: {answer[:600]!r}"


async def test_a_foreign_host_header_does_not_change_the_issuer(
    http: httpx2.AsyncClient, settings: Settings
) -> None:
    path = "/.well-known/oauth-authorization-server" + urlsplit(settings.issuer).path.rstrip("/")
    for headers in (
        {"host": "evil.example"},
        {"x-forwarded-host": "evil.example", "x-forwarded-proto": "https"},
        {"forwarded": "host=evil.example;proto=https"},
    ):
        response = await http.get(path, headers=headers)
        if response.status_code == 200:
            metadata = response.json()
            assert metadata["issuer"] == settings.issuer
            assert all("evil.example" not in str(value) for value in metadata.values())
        else:
            assert response.status_code in (400, 421), response.text
