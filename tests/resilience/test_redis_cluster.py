"""The service on a Redis Cluster (`REDIS_URL=redis+cluster://...`), and a cluster failover.

The contract suite (tests/integration/test_storage_contract.py) holds every Store operation to
the same behaviour on a cluster; this runs the callers: a real `python -m mcp_server` (internal
mode) on a real three-primary cluster, through sign-in, tools, notes, refresh rotation (a retry
within the grace period gets the same tokens) and the end of a grant on refresh-token reuse, which
deletes tokens that live in several hash slots.
Then it looks at the cluster itself: records spread over every primary, and a grant's own keys
(`{grant id}` hash tag) share one slot.

Last, a cluster primary with a replica is killed while a store reads its keys: the store only
ever reports StorageUnavailable (the 503 of every caller) until the replica has taken over, then
the same store, with no new client, reads every key that had been replicated.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
import redis
from redis.crc import key_slot

from auth_server.admin.credentials import new_admin_token
from shared.storage.base import StorageUnavailable
from shared.storage.redis import RedisStore
from tests.fixtures.redis_topologies import RedisClusterDeployment, start_redis_cluster, wait_until
from tests.resilience.cluster import (
    TIMEOUT,
    Cluster,
    build_cluster,
    call,
    http_client,
    mint,
    modern_call,
    running,
    structured,
    token_request,
)

pytestmark = pytest.mark.timeout(90)


ADMIN_TOKEN, ADMIN_DIGEST = new_admin_token()


@pytest.fixture(scope="module")
def app(redis_cluster: RedisClusterDeployment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    deployment = build_cluster(
        "internal",
        Path(tmp_path_factory.mktemp("cluster-app")),
        redis_url=redis_cluster.url,
        instances=1,
        env={"ADMIN_TOKEN_SHA256": ADMIN_DIGEST},
    )
    with running(deployment):
        yield deployment


def keys_by_node(redis_cluster: RedisClusterDeployment, prefix: str) -> dict[str, int]:
    """Every key under `prefix` on the cluster, with the port of the primary that holds it."""
    found: dict[str, int] = {}
    for node in redis_cluster.nodes:
        with redis.Redis(port=node.port, password=redis_cluster.password, decode_responses=True) as client:
            found.update(dict.fromkeys(client.scan_iter(match=f"{prefix}*", count=1000), node.port))
    return found


async def test_sign_in_tools_refresh_and_ending_a_grant_work_on_a_cluster_whose_nodes_all_hold_records(
    app: Cluster, redis_cluster: RedisClusterDeployment
) -> None:
    url, prefix = f"{app.url(0)}/mcp", app.env["REDIS_KEY_PREFIX"]
    with http_client() as browser:
        minted = [mint(app, browser) for _ in range(3)]
        async with httpx2.AsyncClient(timeout=TIMEOUT, trust_env=False) as http:
            for token in minted:
                assert structured(await call(http, url, token.access_token, "whoami"))["subject"] == "demo"
            note = structured(await call(http, url, minted[0].access_token, "notes_add", text="on a cluster"))
            listed = structured(await call(http, url, minted[0].access_token, "notes_list"))
            assert [n["id"] for n in listed["notes"]] == [note["id"]]

        stored = keys_by_node(redis_cluster, prefix)
        assert {port for port in stored.values()} == {node.port for node in redis_cluster.nodes}, (
            "the records did not spread over every primary"
        )
        grants = [key for key in stored if key.startswith(f"{prefix}auth:grant:{{") and key.endswith("}")]
        assert len(grants) == len(minted)
        for grant in grants:
            members = f"{grant}:tokens"
            assert key_slot(members.encode()) == key_slot(grant.encode())
            assert stored[members] == stored[grant], "a grant's record and token set on different nodes"

        # Rotate twice, then replay the first refresh token (its successor was used, so even within
        # REFRESH_TOKEN_GRACE_PERIOD it is reuse): the grant ends, every token in it with it.
        victim = minted[0]
        form = {
            "grant_type": "refresh_token",
            "refresh_token": str(victim.refresh_token),
            "client_id": victim.client_id,
        }
        rotated = token_request(browser, victim.metadata, form)
        assert rotated.status_code == 200, rotated.text
        fresh = rotated.json()
        retried = token_request(browser, victim.metadata, form)  # within REFRESH_TOKEN_GRACE_PERIOD
        assert retried.status_code == 200, retried.text
        assert (retried.json()["access_token"], retried.json()["refresh_token"]) == (
            fresh["access_token"],
            fresh["refresh_token"],
        ), "a retry on a cluster gets the same tokens"
        onwards = token_request(browser, victim.metadata, {**form, "refresh_token": fresh["refresh_token"]})
        assert onwards.status_code == 200, onwards.text
        fresh = onwards.json()
        replayed = token_request(browser, victim.metadata, form)
        assert replayed.status_code == 400, replayed.text
        assert replayed.json()["error"] == "invalid_grant"

    async with httpx2.AsyncClient(timeout=TIMEOUT, trust_env=False) as http:
        for token in (victim.access_token, fresh["access_token"]):
            body, headers = modern_call("whoami", {}, token)
            assert (await http.post(url, json=body, headers=headers)).status_code == 401
        for other in minted[1:]:  # other grants untouched
            assert structured(await call(http, url, other.access_token, "whoami"))["subject"] == "demo"
    with http_client() as browser:
        again = token_request(
            browser,
            victim.metadata,
            {
                "grant_type": "refresh_token",
                "refresh_token": fresh["refresh_token"],
                "client_id": victim.client_id,
            },
        )
        assert again.status_code == 400, "the rotated refresh token outlived its grant"


async def test_the_admin_api_lists_revokes_and_purges_on_a_cluster(app: Cluster) -> None:
    """Its indexes and markers are one key each, in whatever slot: every action works on a cluster."""
    with http_client() as browser:
        minted = mint(app, browser)
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with httpx2.AsyncClient(
        base_url=f"{app.url(0)}/admin", headers=admin, timeout=TIMEOUT, trust_env=False
    ) as http:
        listed = (await http.get("/grants", params={"client_id": minted.client_id})).json()["grants"]
        assert [g["subject"] for g in listed] == ["demo"]
        disabled = await http.patch(f"/clients/{minted.client_id}", json={"disabled": True})
        assert disabled.json()["ended"] == {"grants": 1, "live_tokens": 2}, disabled.text
        purged = await http.post("/purge")
        assert purged.status_code == 200, purged.text
    async with httpx2.AsyncClient(timeout=TIMEOUT, trust_env=False) as http:
        body, headers = modern_call("whoami", {}, minted.access_token)
        assert (await http.post(f"{app.url(0)}/mcp", json=body, headers=headers)).status_code == 401


# As in test_redis_failover.py: no operation waits for the failover itself.
ANSWER_BOUND = 4.0


async def test_when_a_cluster_primary_dies_its_replica_takes_over_and_the_same_store_follows_it(
    tmp_path: Path,
) -> None:
    deployment = await asyncio.to_thread(start_redis_cluster, tmp_path, node_timeout_ms=1000)
    store = RedisStore.from_url(deployment.url, key_prefix="failover:")
    try:
        victim = deployment.nodes[0]
        replica = await asyncio.to_thread(deployment.add_replica, victim)
        keys = [f"record:{i}" for i in range(60)]
        for key in keys:
            await store.set(key, f"value of {key}")
        with deployment.client_of(victim) as client:
            on_victim = sorted(k.removeprefix("failover:") for k in client.scan_iter(match="failover:*"))
        assert on_victim, "no key landed on the primary that will die"
        await asyncio.to_thread(deployment.wait_replicated, victim)

        outcomes: list[str] = []
        promoted_at: list[int] = []  # filled in once the replica is primary
        recovered = asyncio.Event()

        async def keep_reading() -> None:
            while not recovered.is_set():
                key = on_victim[len(outcomes) % len(on_victim)]
                started = time.monotonic()
                try:
                    assert await store.get(key) == f"value of {key}"
                    outcomes.append("ok")
                except StorageUnavailable:
                    outcomes.append("unavailable")
                assert time.monotonic() - started < ANSWER_BOUND
                since = outcomes[promoted_at[0] :] if promoted_at else []
                if since.count("ok") >= 10 and outcomes[-5:] == ["ok"] * 5:
                    recovered.set()
                await asyncio.sleep(0.01)

        reader = asyncio.create_task(keep_reading())
        victim.kill()
        with deployment.client_of(replica) as client:
            await asyncio.to_thread(
                wait_until, lambda: client.info("replication")["role"] == "master", "the replica's promotion"
            )
        promoted_at.append(len(outcomes))
        await asyncio.wait_for(reader, 15)  # it ends once reads succeed again

        assert "unavailable" in outcomes, "the kill never reached the store: the test proved nothing"
        for key in keys:  # every key, from every primary, through the store that saw the failover
            assert await store.get(key) == f"value of {key}"
        assert await store.set(on_victim[0], "written after") is True
        assert await store.get(on_victim[0]) == "written after"
    finally:
        await store.close()
        deployment.stop()
