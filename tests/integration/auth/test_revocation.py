"""Token revocation, RFC 7009 (RV-01..RV-04)."""

from __future__ import annotations

import httpx2
import pytest

from auth_server.validator import InProcessTokenValidator
from shared.settings import Settings
from shared.storage.base import Store
from shared.validation import TokenRejected
from tests.integration.auth.conftest import ALL_DEPLOYMENTS
from tests.integration.auth.helpers import add_client, is_active, refresh, tokens_for
from tests.integration.auth.test_token_endpoint import assert_error

# In every deployment: revocation ends records across the store, and internal mode also tells the MCP
# server's caches.
DEPLOYMENTS = ALL_DEPLOYMENTS


async def test_a_public_client_revokes_its_refresh_token_with_just_its_client_id(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    tokens = await tokens_for(http, store, settings, client)
    response = await http.post(
        "/revoke",
        data={"token": tokens["refresh_token"], "token_type_hint": "refresh_token", **client.auth()},
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert_error(await refresh(http, tokens["refresh_token"], client), "invalid_grant")


async def test_revoking_a_refresh_token_ends_the_whole_grant(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    first = await tokens_for(http, store, settings, client)
    second = (await refresh(http, first["refresh_token"], client)).json()
    validator = InProcessTokenValidator.from_settings(settings, store)
    await validator.validate(second["access_token"])

    await http.post("/revoke", data={"token": second["refresh_token"], **client.auth()})

    assert not await is_active(http, second["access_token"])
    with pytest.raises(TokenRejected):
        await validator.validate(second["access_token"])


async def test_revoking_an_access_token_ends_only_that_token(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    tokens = await tokens_for(http, store, settings, client)
    response = await http.post(
        "/revoke", data={"token": tokens["access_token"], "token_type_hint": "refresh_token", **client.auth()}
    )
    assert response.status_code == 200
    assert not await is_active(http, tokens["access_token"])
    assert (await refresh(http, tokens["refresh_token"], client)).status_code == 200


async def test_another_client_cannot_revoke_a_token_and_the_token_stays_valid(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    owner, other = await add_client(store), await add_client(store, confidential=True)
    tokens = await tokens_for(http, store, settings, owner)
    for token in (tokens["refresh_token"], tokens["access_token"]):
        response = await http.post("/revoke", data={"token": token, **other.auth()})
        assert response.status_code == 200  # as for an unknown token: no oracle (docs/security.md)
        assert response.content == b""
    assert await is_active(http, tokens["access_token"])
    assert (await refresh(http, tokens["refresh_token"], owner)).status_code == 200


async def test_unknown_and_already_revoked_tokens_get_200(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    for token in ("random-string", "a.b.c", "x" * 3000):
        assert (await http.post("/revoke", data={"token": token, **client.auth()})).status_code == 200
    tokens = await tokens_for(http, store, settings, client)
    for _ in range(2):
        response = await http.post("/revoke", data={"token": tokens["refresh_token"], **client.auth()})
        assert response.status_code == 200


async def test_revocation_requires_client_authentication(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store, confidential=True)
    tokens = await tokens_for(http, store, settings, client)
    response = await http.post(
        "/revoke", data={"token": tokens["refresh_token"], "client_id": client.client_id}
    )
    assert_error(response, "invalid_client", 401)
    assert_error(await http.post("/revoke", data={"token": tokens["refresh_token"]}), "invalid_client", 401)
    assert await is_active(http, tokens["refresh_token"])
    assert_error(await http.post("/revoke", data=client.auth()), "invalid_request")
