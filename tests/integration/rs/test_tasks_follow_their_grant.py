"""A task lives within the grant that started it (AUTH_MODE=internal, where grants are visible).

Revoking the grant (here: RFC 7009 revocation of its refresh token, which ends the grant) stops
the task's work within a lease heartbeat, records it as cancelled, and hides it: the revoked
tokens are refused, and a new authorization of the same user and the same client, a new grant,
does not find it. The task runs on a real server with a real Redis, read back from the store.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid

from mcp_server.tasks.runner import REVOKED_MESSAGE
from mcp_server.tasks.store import TaskStore
from shared.scopes import TOOLS_READ
from shared.storage.redis import RedisStore
from tests.e2e import oauth_flow
from tests.e2e.login_driver import authorize
from tests.fixtures.redis_server import redis_server, redis_url  # noqa: F401  (fixtures)
from tests.fixtures.tasks_client import TaskClient
from tests.integration.rs.conftest import CALLBACK, USER_PASSWORD, StartRs

LEASE = 3.0  # the heartbeat, a third of it, is when a running task looks at its grant (a short
# lease must still outlast the stalls of a busy machine: a lapsed one would end the task as failed)


def authorize_again(grant: oauth_flow.MintedGrant, user: str, resource: str) -> oauth_flow.Tokens:
    """A second authorization of the same user through the same registered client: a new grant."""
    verifier, challenge = oauth_flow.pkce_pair()
    state = secrets.token_urlsafe(12)
    url = oauth_flow.authorization_url(
        grant.discovery,
        grant.client.client_id,
        CALLBACK,
        scope=TOOLS_READ,
        resource=resource,
        state=state,
        challenge=challenge,
    )
    answer = authorize(url, username=user, password=USER_PASSWORD)
    assert answer.code, answer.redirect_url
    return oauth_flow.exchange_code(grant.discovery, grant.client, answer.code, verifier, resource)


async def test_revoking_the_grant_stops_and_hides_its_tasks(start_rs: StartRs, redis_url: str) -> None:  # noqa: F811
    rs = await start_rs(
        "internal",
        redis_url=redis_url,
        redis_key_prefix=f"grant-{uuid.uuid4().hex[:8]}:",
        task_lease_seconds=LEASE,
    )
    user = rs.fresh_user()
    grant = await asyncio.to_thread(
        oauth_flow.mint, rs.mcp_url, scope=TOOLS_READ, user=(user, USER_PASSWORD), redirect_uri=CALLBACK
    )
    assert grant.tokens.refresh_token is not None
    before = TaskClient(rs.http, "/mcp", grant.tokens.access_token)
    task_id = await before.start("count_slowly", to=1000, seconds_per_step=0.05)
    await before.wait_for(task_id, lambda task: "Counted to" in task.get("statusMessage", ""))

    await asyncio.to_thread(
        oauth_flow.revoke,
        grant.discovery,
        grant.client.client_id,
        grant.tokens.refresh_token,
        "refresh_token",
    )

    # Stopped: the running count notices within a heartbeat and is recorded as cancelled.
    store = RedisStore.from_settings(rs.settings)
    try:
        tasks = TaskStore(store, max_ttl=rs.settings.task_max_ttl, per_owner=rs.settings.tasks_per_principal)
        deadline = time.monotonic() + 10 * LEASE
        while (snapshot := await tasks.read(task_id)) is not None and snapshot.outcome is None:
            assert time.monotonic() < deadline, "the task kept running after its grant was revoked"
            await asyncio.sleep(0.05)
        assert snapshot is not None
        assert snapshot.outcome is not None
        assert snapshot.outcome.status == "cancelled"
        assert snapshot.outcome.message == REVOKED_MESSAGE
        stopped_at = snapshot.progress.message
        # ...and its work really stopped: no count is reported after the outcome.
        await asyncio.sleep(4 * 0.05)
        later = await tasks.read(task_id)
        assert later is not None
        assert later.progress.message == stopped_at
    finally:
        await store.close()

    # Hidden: the revoked grant's token is refused, and a new grant of the same user and client
    # (a new authorization) does not find the task, in any way.
    assert (await before.post("tasks/get", {"taskId": task_id})).status_code == 401
    tokens = await asyncio.to_thread(authorize_again, grant, user, rs.mcp_url)
    after = TaskClient(rs.http, "/mcp", tokens.access_token)
    me = (await after.call("whoami"))["structuredContent"]
    assert me["subject"] == user
    assert me["client_id"] == grant.client.client_id
    status, error = await after.error("tasks/get", {"taskId": task_id})
    assert (status, error["code"]) == (400, -32602)
    listed = (await after.call("tasks_list"))["structuredContent"]["tasks"]
    assert listed == []
