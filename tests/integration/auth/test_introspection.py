"""Token introspection, RFC 7662 (IN-01..IN-06)."""

from __future__ import annotations

import httpx2

from shared.settings import Settings
from shared.storage.base import Store
from shared.storage.records import access_key
from tests.integration.auth.conftest import ALL_DEPLOYMENTS, Configure, HttpFactory
from tests.integration.auth.helpers import (
    OTHER_MCP,
    RESOURCE,
    RS_CLIENT_ID,
    RS_CLIENT_SECRET,
    add_client,
    configured_client,
    expired_access_token,
    introspect,
    redeem,
    store_code,
    tokens_for,
)
from tests.integration.auth.test_token_endpoint import assert_error

# In every deployment: the introspection client differs by mode (external: the MCP server's own), and expiry
# and revocation are the store's.
DEPLOYMENTS = ALL_DEPLOYMENTS


async def test_a_resource_server_introspects_an_access_token(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    tokens = await tokens_for(http, store, settings, client, scope=("notes:read",))
    response = await introspect(http, tokens["access_token"])
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    info = response.json()
    assert info["active"] is True
    assert info["token_type"] == "Bearer"
    assert info["scope"] == "notes:read"
    assert info["client_id"] == client.client_id
    assert info["sub"] == "demo"
    assert info["aud"] == RESOURCE
    assert info["iss"] == settings.issuer
    assert info["exp"] - info["iat"] == settings.access_token_ttl
    assert info["jti"]


async def test_the_secret_may_also_travel_in_the_form(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    tokens = await tokens_for(http, store, settings, client)
    response = await http.post(
        "/introspect",
        data={"token": tokens["access_token"], "client_id": RS_CLIENT_ID, "client_secret": RS_CLIENT_SECRET},
    )
    assert response.json()["active"] is True


async def test_introspection_without_client_credentials_is_401(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    tokens = await tokens_for(http, store, settings, client)
    assert_error(
        await http.post("/introspect", data={"token": tokens["access_token"]}), "invalid_client", 401
    )
    wrong = httpx2.BasicAuth(RS_CLIENT_ID, "not-the-secret")
    response = await http.post("/introspect", data={"token": tokens["access_token"]}, auth=wrong)
    assert_error(response, "invalid_client", 401)
    assert response.headers["www-authenticate"].startswith("Basic ")


async def test_clients_that_are_not_resource_servers_may_not_introspect(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    public = await add_client(store)
    confidential = await add_client(store, confidential=True)
    tokens = await tokens_for(http, store, settings, public)
    for caller in (public, confidential):
        response = await http.post("/introspect", data={"token": tokens["access_token"], **caller.auth()})
        assert_error(response, "invalid_client", 401)


async def test_a_resource_server_configured_with_may_introspect_can(
    make_http: HttpFactory, store: Store, settings: Settings
) -> None:
    entry, rs = configured_client(may_introspect=True)
    http = await make_http(auth_clients=[entry])
    client = await add_client(store)
    tokens = await tokens_for(http, store, settings, client)
    response = await http.post("/introspect", data={"token": tokens["access_token"]}, auth=rs.basic())
    assert response.json()["active"] is True


async def test_unknown_and_garbage_tokens_are_exactly_inactive(http: httpx2.AsyncClient) -> None:
    for token in ("garbage", "a.b.c", "x" * 5000, "eyJhbGciOiJub25lIn0.e30."):
        response = await introspect(http, token)
        assert response.status_code == 200
        assert response.json() == {"active": False}


async def test_a_missing_token_parameter_is_invalid_request(http: httpx2.AsyncClient) -> None:
    response = await http.post("/introspect", data={}, auth=httpx2.BasicAuth(RS_CLIENT_ID, RS_CLIENT_SECRET))
    assert_error(response, "invalid_request")


async def test_expired_tokens_are_exactly_inactive(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    expired = await expired_access_token(store, settings, client)
    assert await store.get(access_key(expired)) is not None  # still stored...
    assert (await introspect(http, expired)).json() == {"active": False}  # ...but past its exp


async def test_revoked_tokens_are_exactly_inactive(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    tokens = await tokens_for(http, store, settings, client)
    await http.post("/revoke", data={"token": tokens["access_token"], **client.auth()})
    assert (await introspect(http, tokens["access_token"])).json() == {"active": False}


async def test_a_wrong_type_hint_never_hides_a_token(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    tokens = await tokens_for(http, store, settings, client)
    refresh_info = (await introspect(http, tokens["refresh_token"], token_type_hint="access_token")).json()
    assert refresh_info["active"] is True
    assert refresh_info["token_type"] == "refresh_token"
    assert "aud" not in refresh_info  # a refresh token is never a bearer credential for any resource
    access_info = (await introspect(http, tokens["access_token"], token_type_hint="refresh_token")).json()
    assert access_info["active"] is True
    assert access_info["token_type"] == "Bearer"
    weird = (await introspect(http, tokens["access_token"], token_type_hint="id_token")).json()
    assert weird["active"] is True


async def test_a_token_for_a_resource_this_server_does_not_serve_is_inactive(
    make_http: HttpFactory, store: Store, configure: Configure
) -> None:
    """IN-06: the resource servers of this AS see only tokens meant for them. A token minted for
    another deployment's resource (same Store, other MCP URL) is inactive here."""
    other = await make_http(mcp_public_url=OTHER_MCP)
    other_settings = configure(mcp_public_url=OTHER_MCP)
    client = await add_client(store)
    code = await store_code(store, client, settings=other_settings, resource=f"{OTHER_MCP}/mcp")
    tokens = (await redeem(other, code, client, resource=f"{OTHER_MCP}/mcp")).json()
    assert (await introspect(other, tokens["access_token"])).json()["active"] is True
    here = await make_http()
    assert (await introspect(here, tokens["access_token"])).json() == {"active": False}
