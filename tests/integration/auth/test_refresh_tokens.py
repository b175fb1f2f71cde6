"""Refresh tokens: rotation, reuse detection, client binding, scope and resource (RT-01..RT-06).

Reuse is shown the two ways it is detected: a rotated token presented again after its successor
was used (so within REFRESH_TOKEN_GRACE_PERIOD too), and, on a server without a grace period, any
second presentation. Retries within the period have their own module (test_refresh_grace.py).
"""

from __future__ import annotations

import asyncio

import httpx2

from shared.settings import Settings
from shared.storage.base import Store
from tests.integration.auth.conftest import ALL_DEPLOYMENTS, HttpFactory
from tests.integration.auth.helpers import RESOURCE, add_client, introspect, is_active, refresh, tokens_for
from tests.integration.auth.test_token_endpoint import assert_error

# In every deployment: rotation and reuse detection are read-modify-writes on the store; concurrent
# refreshes race on it.
DEPLOYMENTS = ALL_DEPLOYMENTS


async def test_a_public_client_gets_a_new_refresh_token_on_every_refresh(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    first = await tokens_for(http, store, settings, client)
    response = await refresh(http, first["refresh_token"], client)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert not await is_active(http, first["refresh_token"])
    assert (await refresh(http, second["refresh_token"], client)).status_code == 200
    assert_error(await refresh(http, first["refresh_token"], client), "invalid_grant")


async def test_refresh_token_reuse_revokes_the_whole_grant(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    first = await tokens_for(http, store, settings, client)
    second = (await refresh(http, first["refresh_token"], client)).json()
    third = (await refresh(http, second["refresh_token"], client)).json()

    assert_error(await refresh(http, first["refresh_token"], client), "invalid_grant")

    assert_error(await refresh(http, third["refresh_token"], client), "invalid_grant")
    for body in (first, second, third):
        assert not await is_active(http, body["access_token"])
    assert not await is_active(http, third["refresh_token"])


async def test_without_a_grace_period_a_second_presentation_revokes_the_whole_grant(
    make_http: HttpFactory, store: Store, settings: Settings
) -> None:
    http = await make_http(refresh_token_grace_period=0)
    client = await add_client(store)
    first = await tokens_for(http, store, settings, client)
    second = (await refresh(http, first["refresh_token"], client)).json()

    assert_error(await refresh(http, first["refresh_token"], client), "invalid_grant")

    assert_error(await refresh(http, second["refresh_token"], client), "invalid_grant")
    for token in (first["access_token"], second["access_token"], second["refresh_token"]):
        assert not await is_active(http, token)


async def test_reuse_ends_only_its_own_grant(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    victim = await tokens_for(http, store, settings, client)
    bystander = await tokens_for(http, store, settings, client)
    second = (await refresh(http, victim["refresh_token"], client)).json()
    await refresh(http, second["refresh_token"], client)
    assert_error(await refresh(http, victim["refresh_token"], client), "invalid_grant")
    assert not await is_active(http, second["access_token"])
    assert await is_active(http, bystander["access_token"])
    assert (await refresh(http, bystander["refresh_token"], client)).status_code == 200


async def test_without_a_grace_period_concurrent_refreshes_with_one_token_end_the_grant(
    make_http: HttpFactory, store: Store, settings: Settings
) -> None:
    """REFRESH_TOKEN_GRACE_PERIOD=0: parallel use of one refresh token is indistinguishable from
    theft, so at most one request gets tokens, and those die with the grant at once."""
    http = await make_http(refresh_token_grace_period=0)
    client = await add_client(store)
    first = await tokens_for(http, store, settings, client)
    responses = await asyncio.gather(*(refresh(http, first["refresh_token"], client) for _ in range(5)))
    winners = [r.json() for r in responses if r.status_code == 200]
    assert len(winners) <= 1
    assert all(r.json()["error"] == "invalid_grant" for r in responses if r.status_code != 200)
    for body in [first, *winners]:
        assert not await is_active(http, body["access_token"])
        assert not await is_active(http, body["refresh_token"])


async def test_a_refresh_token_presented_by_another_client_is_invalid_grant_and_stays_valid(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    owner, other = await add_client(store), await add_client(store)
    tokens = await tokens_for(http, store, settings, owner)
    assert_error(await refresh(http, tokens["refresh_token"], other), "invalid_grant")
    assert (await refresh(http, tokens["refresh_token"], owner)).status_code == 200


async def test_a_refresh_needs_the_confidential_clients_secret(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store, confidential=True)
    tokens = await tokens_for(http, store, settings, client)
    response = await http.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": client.client_id,
        },
    )
    assert_error(response, "invalid_client", 401)
    assert (await refresh(http, tokens["refresh_token"], client)).status_code == 200


async def test_a_refresh_may_narrow_the_scope_and_the_next_refresh_gets_the_full_scope_back(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    first = await tokens_for(http, store, settings, client, scope=("notes:read", "notes:write"))
    narrow = (await refresh(http, first["refresh_token"], client, scope="notes:read")).json()
    assert narrow["scope"] == "notes:read"
    assert (await introspect(http, narrow["access_token"])).json()["scope"] == "notes:read"
    full = (await refresh(http, narrow["refresh_token"], client)).json()
    assert full["scope"].split() == ["notes:read", "notes:write"]


async def test_a_refresh_asking_for_a_broader_scope_is_invalid_scope_and_keeps_the_token(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    tokens = await tokens_for(http, store, settings, client, scope=("notes:read",))
    response = await refresh(http, tokens["refresh_token"], client, scope="notes:read notes:write")
    assert_error(response, "invalid_scope")
    assert (await refresh(http, tokens["refresh_token"], client)).status_code == 200


async def test_a_refresh_cannot_change_the_resource(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    tokens = await tokens_for(http, store, settings, client)
    response = await refresh(http, tokens["refresh_token"], client, resource="https://other.example/mcp")
    assert_error(response, "invalid_target")
    renewed = (await refresh(http, tokens["refresh_token"], client, resource=RESOURCE)).json()
    assert (await introspect(http, renewed["access_token"])).json()["aud"] == RESOURCE


async def test_a_client_that_lost_the_refresh_grant_cannot_refresh(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    tokens = await tokens_for(http, store, settings, client)
    await add_client(store, client_id=client.client_id, grant_types=("authorization_code",))
    assert_error(await refresh(http, tokens["refresh_token"], client), "unauthorized_client")


async def test_an_access_token_is_not_a_refresh_token(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    tokens = await tokens_for(http, store, settings, client)
    assert_error(await refresh(http, tokens["access_token"], client), "invalid_grant")
    assert await is_active(http, tokens["access_token"])
