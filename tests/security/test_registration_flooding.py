"""What an anonymous caller can make /register keep.

The attack: POST /register in a loop. Registration is open (MCP clients expect it) and was
rate-limited per address, but every registration was kept until an operator deleted it: one address
filled the Store with RATE_LIMIT_PER_MINUTE clients a minute, forever, and many addresses many
times that. Now a registration that no signed-in user has authorized is kept only
REGISTRATION_UNUSED_TTL seconds, at most MAX_UNUSED_REGISTRATIONS of them at once (one more deletes
the oldest unused one), and the first authorization code a user approves for a client keeps it
until an administrator deletes it. Every deployment (internal/external x memory/redis).
"""

from __future__ import annotations

import asyncio
import time

import httpx2

from shared.storage.base import Store
from shared.storage.records import client_key
from tests.integration.auth.conftest import HttpFactory
from tests.integration.auth.flow_helpers import authorize_params, callback_dict, new_pkce, register, run_flow
from tests.security.store_view import stored_keys

# The unused-registration index and the per-address counters are Store-wide: each test its own.
STORE_PER_TEST = True

CAP = 5


async def registrations_in(store: Store) -> set[str]:
    return {key.removeprefix("auth:client:") for key in await stored_keys(store, "auth:client:")}


async def is_registered(http: httpx2.AsyncClient, client_id: str) -> bool:
    """Whether /authorize still knows the client (an unknown one gets the error page, no redirect)."""
    response = await http.get("/authorize", params=authorize_params(client_id, new_pkce()))
    return response.status_code in (302, 303)


async def test_a_registration_loop_keeps_at_most_the_unused_cap(make_http: HttpFactory, store: Store) -> None:
    http = await make_http(max_unused_registrations=CAP, rate_limit_per_minute=1000)

    ids = [(await register(http))["client_id"] for _ in range(4 * CAP)]

    kept = await registrations_in(store)
    assert kept == set(ids[-CAP:])  # the newest CAP; every older one deleted, not merely hidden
    assert not await is_registered(http, ids[0])
    assert await is_registered(http, ids[-1])


async def test_the_per_address_limit_refuses_a_registration_loop(
    make_http: HttpFactory, store: Store
) -> None:
    http = await make_http(rate_limit_per_minute=10)
    statuses = [
        (await http.post("/register", json={"redirect_uris": ["http://127.0.0.1/cb"]})).status_code
        for _ in range(25)
    ]
    assert statuses == [201] * 10 + [429] * 15
    assert len(await registrations_in(store)) == 10


async def test_an_unused_registration_expires(make_http: HttpFactory, store: Store) -> None:
    http = await make_http(registration_unused_ttl=1)
    client_id = (await register(http))["client_id"]
    ttl = await store.ttl(client_key(client_id))
    assert ttl is not None
    assert 0 < ttl <= 1

    deadline = time.monotonic() + 10
    while await store.get(client_key(client_id)) is not None:  # the Store's own expiry, no sweep
        assert time.monotonic() < deadline, "the unused registration did not expire"
        await asyncio.sleep(0.1)
    assert not await is_registered(http, client_id)


async def test_a_client_a_user_authorized_is_kept_beyond_the_unused_ttl_and_cap(
    make_http: HttpFactory, store: Store
) -> None:
    http = await make_http(max_unused_registrations=CAP, rate_limit_per_minute=1000)
    used = (await register(http))["client_id"]
    flow = await run_flow(http, authorize_params(used, new_pkce()))
    assert "code" in callback_dict(flow.headers["location"])
    ttl = await store.ttl(client_key(used))
    assert ttl is not None
    assert ttl > 50 * 365 * 24 * 3600  # "until deleted"

    for _ in range(3 * CAP):  # the flood that pushes out unused registrations
        await register(http)

    assert used in await registrations_in(store)
    assert await is_registered(http, used)
