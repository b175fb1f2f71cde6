"""Refresh rotation's grace period (REFRESH_TOKEN_GRACE_PERIOD, docs/oauth.md "Refreshing tokens").

Within the period after a refresh token's first presentation, its own client presenting it again
(a retry after a lost response, a concurrent refresh) gets the very tokens that rotation issued;
after it, or once those tokens were themselves rotated, a presentation is reuse and ends the grant.
Every test runs in the four deployments of this folder (internal/external x memory/redis).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx2

from shared.settings import Settings
from shared.storage.base import Store
from shared.storage.records import refresh_retry_key, rotated_refresh_key
from tests.integration.auth.conftest import ALL_DEPLOYMENTS, HttpFactory
from tests.integration.auth.helpers import (
    RESOURCE,
    OAuthClient,
    add_client,
    introspect,
    is_active,
    refresh,
    tokens_for,
)
from tests.integration.auth.test_token_endpoint import assert_error

# In every deployment: the grace period's memory of a rotation lives in the store, with an expiry, raced by
# concurrent retries.
DEPLOYMENTS = ALL_DEPLOYMENTS

WINDOW_WAIT = 10.0  # a bound on waiting for a short grace period to end, never a sleep


async def rotated(
    http: httpx2.AsyncClient, refresh_token: str, client: OAuthClient, **extra: str
) -> dict[str, Any]:
    response = await refresh(http, refresh_token, client, **extra)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def pair_of(body: dict[str, Any]) -> tuple[str, str, str]:
    """What makes two token responses the same answer (`expires_in` counts down between them)."""
    return body["access_token"], body["refresh_token"], body["scope"]


async def grace_period_over(store: Store, refresh_token: str) -> None:
    """Wait until the Store forgot the token's rotation (the period is the record's TTL)."""
    key = refresh_retry_key(refresh_token)
    deadline = time.monotonic() + WINDOW_WAIT
    while await store.get(key) is not None:
        assert time.monotonic() < deadline, "the grace period did not end"
        await asyncio.sleep(0.05)


async def test_a_retry_within_the_grace_period_gets_the_same_tokens_and_both_copies_work(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    first = await tokens_for(http, store, settings, client)
    lost = await rotated(http, first["refresh_token"], client)
    retried = await rotated(http, first["refresh_token"], client)

    assert retried["refresh_token"] == lost["refresh_token"]
    assert retried["access_token"] == lost["access_token"]
    assert retried["scope"] == lost["scope"]
    assert 0 < retried["expires_in"] <= lost["expires_in"]
    assert await is_active(http, retried["access_token"])
    assert (await refresh(http, retried["refresh_token"], client)).status_code == 200


async def test_a_retried_jwt_is_the_same_token_signed_again(
    make_http: HttpFactory, store: Store, settings: Settings
) -> None:
    http = await make_http(token_format="jwt")
    client = await add_client(store)
    first = await tokens_for(http, store, settings, client)
    lost = await rotated(http, first["refresh_token"], client)
    retried = await rotated(http, first["refresh_token"], client)

    assert retried["refresh_token"] == lost["refresh_token"]
    described = [(await introspect(http, body["access_token"])).json() for body in (lost, retried)]
    assert all(d["active"] for d in described), described
    assert described[0]["jti"] == described[1]["jti"]
    assert described[0]["exp"] == described[1]["exp"]


async def test_concurrent_refreshes_with_one_token_all_get_one_working_pair_and_the_grant_lives(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    first = await tokens_for(http, store, settings, client)
    answers = await asyncio.gather(*(refresh(http, first["refresh_token"], client) for _ in range(10)))

    assert [a.status_code for a in answers] == [200] * 10, [a.text for a in answers]
    pairs = {(a.json()["access_token"], a.json()["refresh_token"]) for a in answers}
    assert len(pairs) == 1, pairs
    ((access_token, refresh_token),) = pairs
    assert await is_active(http, access_token)
    assert await is_active(http, first["access_token"]), "the grant must not have ended"
    assert (await refresh(http, refresh_token, client)).status_code == 200


async def test_a_retry_gets_the_scope_the_first_request_asked_for(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    first = await tokens_for(http, store, settings, client, scope=("notes:read", "notes:write"))
    narrowed = await rotated(http, first["refresh_token"], client, scope="notes:read")
    retried = await rotated(http, first["refresh_token"], client)
    assert pair_of(retried) == pair_of(narrowed)
    assert (await introspect(http, retried["access_token"])).json()["scope"] == "notes:read"
    full = await rotated(http, retried["refresh_token"], client)
    assert full["scope"].split() == ["notes:read", "notes:write"]


async def test_a_retry_cannot_change_the_resource(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    first = await tokens_for(http, store, settings, client)
    await rotated(http, first["refresh_token"], client)
    response = await refresh(http, first["refresh_token"], client, resource="https://other.example/mcp")
    assert_error(response, "invalid_target")
    assert (await rotated(http, first["refresh_token"], client, resource=RESOURCE))["access_token"]


async def test_another_client_presenting_a_just_rotated_token_is_refused_and_changes_nothing(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    owner, other = await add_client(store), await add_client(store)
    first = await tokens_for(http, store, settings, owner)
    second = await rotated(http, first["refresh_token"], owner)

    assert_error(await refresh(http, first["refresh_token"], other), "invalid_grant")

    assert await is_active(http, second["access_token"])
    assert pair_of(await rotated(http, first["refresh_token"], owner)) == pair_of(second)


async def test_a_confidential_clients_retry_needs_its_secret(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store, confidential=True)
    first = await tokens_for(http, store, settings, client)
    second = await rotated(http, first["refresh_token"], client)
    anonymous = {
        "grant_type": "refresh_token",
        "refresh_token": first["refresh_token"],
        "client_id": client.client_id,
    }
    assert_error(await http.post("/token", data=anonymous), "invalid_client", 401)
    assert pair_of(await rotated(http, first["refresh_token"], client)) == pair_of(second)


async def test_after_the_grace_period_a_second_presentation_revokes_the_whole_grant(
    make_http: HttpFactory, store: Store, settings: Settings
) -> None:
    http = await make_http(refresh_token_grace_period=3)  # long enough to retry within it on a busy machine
    client = await add_client(store)
    first = await tokens_for(http, store, settings, client)
    second = await rotated(http, first["refresh_token"], client)
    assert pair_of(await rotated(http, first["refresh_token"], client)) == pair_of(second)  # still within it
    await grace_period_over(store, first["refresh_token"])

    assert_error(await refresh(http, first["refresh_token"], client), "invalid_grant")

    assert_error(await refresh(http, second["refresh_token"], client), "invalid_grant")
    for token in (first["access_token"], second["access_token"], second["refresh_token"]):
        assert not await is_active(http, token)


async def test_a_retry_after_its_tokens_were_rotated_again_is_reuse_and_ends_the_grant(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    first = await tokens_for(http, store, settings, client)
    second = await rotated(http, first["refresh_token"], client)
    third = await rotated(http, second["refresh_token"], client)

    assert_error(await refresh(http, first["refresh_token"], client), "invalid_grant")

    for token in (second["access_token"], third["access_token"], third["refresh_token"]):
        assert not await is_active(http, token)


async def test_a_retry_brings_no_token_of_a_revoked_grant_back(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    first = await tokens_for(http, store, settings, client)
    second = await rotated(http, first["refresh_token"], client)
    revoked = await http.post("/revoke", data={"token": second["refresh_token"], **client.auth()})
    assert revoked.status_code == 200

    assert_error(await refresh(http, first["refresh_token"], client), "invalid_grant")

    for token in (first["access_token"], second["access_token"], second["refresh_token"]):
        assert not await is_active(http, token)


async def test_what_a_retry_needs_is_stored_without_any_token(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    first = await tokens_for(http, store, settings, client)
    second = await rotated(http, first["refresh_token"], client)
    retry_key = refresh_retry_key(first["refresh_token"])
    stored = {key: await store.get(key) for key in (retry_key, rotated_refresh_key(first["refresh_token"]))}

    retry_record = json.loads(str(stored[retry_key]))
    assert retry_record["client_id"] == client.client_id
    assert len(retry_record["salt"]) >= 43
    everything = json.dumps(stored)
    for token in (first["refresh_token"], second["refresh_token"], second["access_token"]):
        assert token not in everything
    ttl = await store.ttl(retry_key)
    assert ttl is not None
    assert 0 < ttl <= settings.refresh_token_grace_period
