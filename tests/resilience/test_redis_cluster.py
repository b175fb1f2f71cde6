"""The whole service on a Redis Cluster (`REDIS_URL=redis+cluster://...`).

The contract suite (tests/integration/test_storage_contract.py) holds every Store operation to
the same behaviour on a cluster; this runs the callers: a real `python -m mcp_server` (internal
mode) on a real three-primary cluster, through sign-in, tools, notes, refresh rotation and the
end of a grant on refresh-token reuse, which deletes tokens that live in several hash slots.
Then it looks at the cluster itself: records spread over every primary, and a grant's own keys
(`{grant id}` hash tag) share one slot.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
import redis
from redis.crc import key_slot

from tests.fixtures.redis_topologies import RedisClusterDeployment
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


@pytest.fixture(scope="module")
def app(redis_cluster: RedisClusterDeployment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    deployment = build_cluster(
        "internal", Path(tmp_path_factory.mktemp("cluster-app")), redis_url=redis_cluster.url, instances=1
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

        # Rotate, then replay the first refresh token: the grant ends, every token in it with it.
        victim = minted[0]
        form = {
            "grant_type": "refresh_token",
            "refresh_token": str(victim.refresh_token),
            "client_id": victim.client_id,
        }
        rotated = token_request(browser, victim.metadata, form)
        assert rotated.status_code == 200, rotated.text
        fresh = rotated.json()
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
