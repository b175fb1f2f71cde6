"""Attacks on refresh rotation's grace period (auth_server/grants/refresh_token.py, docs/oauth.md).

In the four deployments (internal/external x memory/redis), over real HTTP:
- a thief who stole a public client's refresh token and presents it within the period gets the
  owner's very tokens, never a chain of its own, and the first stale presentation ends the grant
  for both (the trade-off the period makes, and its limit);
- a confidential client's stolen token is useless without the secret, within the period too;
- nothing an attacker can read from the Store (a backup, a replica) yields a token: what the
  period keeps holds none, and the derived tokens cannot be computed from it;
- unknown tokens make the server keep nothing.
"""

from __future__ import annotations

import json
from typing import Any

import httpx2
from redis import Redis

from auth_server import crypto
from shared.settings import Settings
from shared.storage.base import Store
from shared.storage.memory import MemoryStore
from tests.integration.auth.conftest import ALL_DEPLOYMENTS, AuthServers
from tests.integration.auth.helpers import add_client, is_active, refresh, tokens_for
from tests.integration.auth.test_refresh_grace import pair_of
from tests.integration.auth.test_token_endpoint import assert_error

# In every deployment: rotation and its grace period are read-modify-writes on the Store, raced by a thief.
DEPLOYMENTS = ALL_DEPLOYMENTS


async def test_a_thief_within_the_grace_period_gets_the_owners_tokens_and_a_stale_copy_ends_the_grant(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)  # public: its client_id is no secret, the thief has it too
    first = await tokens_for(http, store, settings, client)
    owners = (await refresh(http, first["refresh_token"], client)).json()

    thiefs = (await refresh(http, first["refresh_token"], client)).json()
    assert pair_of(thiefs) == pair_of(owners), "no chain of its own: the very pair the owner holds"

    onwards = (await refresh(http, owners["refresh_token"], client)).json()  # the owner moves on
    assert_error(await refresh(http, first["refresh_token"], client), "invalid_grant")  # stale copy

    for token in (onwards["access_token"], onwards["refresh_token"], thiefs["access_token"]):
        assert not await is_active(http, token)
    assert_error(await refresh(http, onwards["refresh_token"], client), "invalid_grant")


async def test_a_confidential_clients_just_rotated_token_is_useless_without_its_secret(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store, confidential=True)
    first = await tokens_for(http, store, settings, client)
    owners = (await refresh(http, first["refresh_token"], client)).json()
    for stolen in (
        {"client_id": client.client_id},
        {"client_id": client.client_id, "client_secret": "a guess at the secret, long enough"},
    ):
        form = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"], **stolen}
        assert_error(await http.post("/token", data=form), "invalid_client", 401)
    assert await is_active(http, owners["access_token"])
    assert (await refresh(http, owners["refresh_token"], client)).status_code == 200


async def stored_text(servers: AuthServers, store: Store) -> str:
    """Every key and value the deployment's Store holds, as text (what a stolen backup shows)."""
    if isinstance(store, MemoryStore):
        dump: dict[str, Any] = {}
        for key, value in vars(store)["_data"].items():
            dump[key] = sorted(value) if isinstance(value, set) else value
        return json.dumps(dump, default=str)
    prefix = servers.settings().redis_key_prefix
    raw = Redis.from_url(str(servers.redis_url), decode_responses=True)
    try:
        parts = []
        for key in raw.scan_iter(match=f"{prefix}*", count=1000):
            kind = raw.type(key)
            value: Any = {
                "string": raw.get,
                "set": raw.smembers,
                "hash": raw.hgetall,
                "zset": lambda k: raw.zrange(k, 0, -1),
            }[kind](key)
            parts.append(f"{key}={sorted(value) if isinstance(value, set) else value}")
        return "\n".join(parts)
    finally:
        raw.close()


async def test_the_store_holds_no_token_and_nothing_to_derive_one_from_after_rotations_and_retries(
    servers: AuthServers, http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    issued = [await tokens_for(http, store, settings, client)]
    for _ in range(2):
        following = (await refresh(http, issued[-1]["refresh_token"], client)).json()
        retried = (await refresh(http, issued[-1]["refresh_token"], client)).json()
        assert pair_of(retried) == pair_of(following)
        issued.append(following)

    everything = await stored_text(servers, store)

    for body in issued:
        for name in ("access_token", "refresh_token"):
            assert body[name] not in everything, f"a {name} is stored in clear"
    # What a retry record keeps (the salt) derives the next tokens only with the presented token.
    assert crypto.digest(issued[-1]["refresh_token"]) in everything  # stored as a digest, as always


async def test_unknown_refresh_tokens_make_the_server_keep_nothing(
    servers: AuthServers, http: httpx2.AsyncClient, store: Store
) -> None:
    client = await add_client(store)
    for attempt in range(30):
        assert_error(await refresh(http, f"made-up-token-{attempt}-" + "x" * 30, client), "invalid_grant")
    everything = await stored_text(servers, store)
    for attempt in range(30):
        digest = crypto.digest(f"made-up-token-{attempt}-" + "x" * 30)
        assert digest not in everything
