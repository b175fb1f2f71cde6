"""Abuse resistance (X-02) and the audit trail: rate limits answer 429 + Retry-After, every
security event is one JSON line, and no credential ever reaches a log line or the Store in clear."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx2
import pytest

from shared.settings import Settings
from shared.storage.base import Store
from shared.storage.memory import MemoryStore
from shared.storage.redis import RedisStore
from tests.integration.auth.conftest import ALL_DEPLOYMENTS, AuthServers, Configure, HttpFactory
from tests.integration.auth.helpers import (
    RS_CLIENT_SECRET,
    add_client,
    client_address,
    introspect,
    pkce_pair,
    redeem,
    refresh,
    store_code,
)
from tests.integration.auth.test_token_endpoint import assert_error

# In every deployment: the limits are counters in the store, and what is stored in clear depends on the
# store's encoding.
DEPLOYMENTS = ALL_DEPLOYMENTS


async def test_guessing_client_secrets_at_the_token_endpoint_hits_a_429(
    make_http: HttpFactory, store: Store
) -> None:
    http = await make_http(rate_limit_per_minute=60)
    client = await add_client(store, confidential=True, grant_types=("client_credentials",))
    statuses = []
    for attempt in range(100):
        form = {
            "grant_type": "client_credentials",
            "client_id": client.client_id,
            "client_secret": f"guess{attempt}",
        }
        statuses.append((await http.post("/token", data=form)).status_code)
    assert statuses[:60] == [401] * 60
    assert set(statuses[60:]) == {429}
    response = await http.post("/token", data={"grant_type": "client_credentials", **client.auth()})
    assert_error(response, "temporarily_unavailable", 429)
    assert 1 <= int(response.headers["retry-after"]) <= 60


async def test_introspection_is_limited_per_resource_server_and_revocation_per_ip(
    make_http: HttpFactory,
) -> None:
    http = await make_http(rate_limit_per_minute=3, introspection_rate_limit_per_minute=5)
    for _ in range(5):  # more than the per-IP limit: a resource server has its own
        assert (await introspect(http, "guess")).status_code == 200
    limited = await introspect(http, "guess")
    assert limited.status_code == 429
    assert "retry-after" in limited.headers
    for _ in range(3):
        await http.post("/revoke", data={"token": "x", "client_id": "c"})
    assert (await http.post("/revoke", data={"token": "x", "client_id": "c"})).status_code == 429


async def test_the_limit_counts_per_client_ip(servers: AuthServers) -> None:
    running = await servers.start(rate_limit_per_minute=2)
    try:  # two clients, each from a loopback address of its own
        async with running.client() as noisy, running.client() as quiet:
            for _ in range(3):
                await noisy.post("/token", data={"grant_type": "password"})
            assert (await noisy.post("/token", data={"grant_type": "password"})).status_code == 429
            assert (await quiet.post("/token", data={"grant_type": "password"})).status_code == 400
    finally:
        await servers.stop([running])


def audit_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "auth_server.audit"]


async def test_security_events_are_audited_without_any_credential_in_the_logs(
    servers: AuthServers, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    running = await servers.start(rate_limit_per_minute=12)
    address = client_address()
    try:
        async with running.client(local_address=address) as http:
            await audited_events_leave_no_credential(http, store, running.settings, caplog, address)
    finally:
        await servers.stop([running])


async def audited_events_leave_no_credential(
    http: httpx2.AsyncClient,
    store: Store,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
    address: str,
) -> None:
    secrets: list[str] = [RS_CLIENT_SECRET]
    client = await add_client(store, confidential=True)
    assert client.secret is not None
    secrets.append(client.secret)

    code = await store_code(store, client, settings=settings)
    secrets += [code.code, code.verifier]
    first = (await redeem(http, code, client)).json()
    assert "refresh_token" in first, first
    second = (await refresh(http, first["refresh_token"], client)).json()
    await refresh(http, second["refresh_token"], client)
    await refresh(http, first["refresh_token"], client)  # reuse (its successor was used): grant revoked
    replayed = await store_code(store, client, settings=settings)
    secrets += [replayed.code, replayed.verifier]
    third = (await redeem(http, replayed, client)).json()
    await redeem(http, replayed, client)  # replay: grant revoked
    fourth = (await redeem(http, await store_code(store, client, settings=settings), client)).json()
    await http.post("/revoke", data={"token": fourth["refresh_token"], **client.auth()})
    wrong = pkce_pair()[0]
    secrets.append(wrong)
    await http.post(
        "/token",
        data={"grant_type": "client_credentials", "client_id": client.client_id, "client_secret": wrong},
    )
    await introspect(http, second["access_token"])
    for body in (first, second, third, fourth):
        secrets += [body["access_token"], body["refresh_token"]]
    while (await http.post("/token", data={"grant_type": "password"})).status_code != 429:
        pass

    events = [line["event"] for line in audit_lines(caplog)]
    for expected in (
        "token_issued",
        "refresh_reuse",
        "code_replay",
        "revoked",
        "client_auth_failed",
        "rate_limited",
    ):
        assert expected in events, events
    reuse = next(line for line in audit_lines(caplog) if line["event"] == "refresh_reuse")
    assert reuse["client_id"] == client.client_id
    assert reuse["grant_id"]
    assert reuse["ip"] == address  # the client's own address, as the server saw it

    everything_logged = "\n".join(
        [caplog.text, *(r.getMessage() for r in caplog.records), *(str(r.__dict__) for r in caplog.records)]
    )
    for secret in secrets:
        assert secret not in everything_logged


async def stored_text(store: Store) -> str:
    """Every key and value the Store holds, as one string (white-box: reads the backend)."""
    if isinstance(store, MemoryStore):
        return repr(store._data)
    assert isinstance(store, RedisStore)
    redis, prefix, parts = store._redis, store._prefix, []
    async for key in redis.scan_iter(match=f"{prefix}*"):
        kind = str(await redis.type(key))
        value = {
            "string": redis.get,
            "hash": redis.hgetall,
            "set": redis.smembers,
            "zset": lambda name: redis.zrange(name, 0, -1, withscores=True),  # expiring indexes
        }[kind](key)
        parts.append(f"{key!s}={await value!s}")
    return "\n".join(parts)


async def test_no_token_code_or_secret_is_stored_in_clear(
    make_http: HttpFactory, store: Store, configure: Configure
) -> None:
    for token_format in ("opaque", "jwt"):
        http = await make_http(token_format=token_format)
        settings = configure(token_format=token_format)
        client = await add_client(store, confidential=True)
        assert client.secret is not None
        code = await store_code(store, client, settings=settings)
        first = (await redeem(http, code, client)).json()
        second = (await refresh(http, first["refresh_token"], client)).json()
        stored = await stored_text(store)
        credentials = [client.secret, code.code, code.verifier]
        credentials += [body[name] for body in (first, second) for name in ("access_token", "refresh_token")]
        for credential in credentials:
            assert credential not in stored
