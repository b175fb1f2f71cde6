"""A record the servers cannot read is absent: never a 500, and nothing else is touched.

Whatever sits under a key (a value another version wrote, an operator's hand edit, a restore
gone wrong), the endpoint that reads it answers as if the record were not there: the OAuth error
the spec gives for an unknown code or token, an inactive introspection, a fresh sign-in. Each
test writes garbage under one key family of `shared/storage/records.py` in a real Redis, drives
the endpoints that read that family through a real server (AUTH_MODE=internal: the MCP server
and the authorization server in one app), and checks the answer's shape. A bystander's records
(another client's tokens, grant and consent) are compared before and after every test.

Not written here: `auth:profile` (written at a federated sign-in, read by nothing), and the
administrators' indexes `auth:clients` and `auth:client-tokens` (id lists the admin API looks up
one by one, like the account page's indexes below).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest

from auth_server.sessions import SessionRecord
from shared.scopes import NOTES_READ, NOTES_WRITE, TOOLS_READ
from shared.storage import records
from shared.storage.base import Store
from shared.storage.records import (
    JWKS_KEY,
    access_key,
    app_grants_key,
    app_revoked_key,
    apps_key,
    client_key,
    code_key,
    consent_key,
    disabled_client_key,
    grant_key,
    grant_members_key,
    jti_key,
    metadata_document_failure_key,
    metadata_document_key,
    notebook_key,
    open_requests_key,
    pending_key,
    rate_limit_key,
    redeemed_code_key,
    refresh_key,
    refresh_retry_key,
    rotated_refresh_key,
    session_key,
    task_key,
    task_outcome_key,
    upstream_state_key,
)
from tests.fixtures.redis_server import redis_server, redis_url  # noqa: F401  (fixtures)
from tests.fixtures.tasks_client import TaskClient
from tests.integration.auth.account_helpers import listed_apps, revoke
from tests.integration.auth.conftest import AuthServers, RunningAs
from tests.integration.auth.flow_helpers import (
    authorize_params,
    is_client_redirect,
    new_pkce,
    register,
    run_flow,
)
from tests.integration.auth.helpers import (
    OAuthClient,
    add_client,
    client_address,
    introspect,
    is_active,
    redeem,
    refresh,
    store_code,
)
from tests.integration.rs.conftest import LEGACY, Mcp, message

# Not JSON, JSON of another shape, and a record of some other kind: none of them parses.
GARBAGE = ("{not json", '{"written_by": "another version"}', '["a", 1, null]')
SCOPES = (TOOLS_READ, NOTES_READ, NOTES_WRITE)


@dataclass
class Deployment:
    servers: AuthServers
    server: RunningAs

    @property
    def store(self) -> Store:
        return self.servers.store

    def client(self, **kwargs: Any) -> httpx2.AsyncClient:
        return self.server.client(**kwargs)


@pytest.fixture(scope="module")
async def deployment(redis_url: str) -> AsyncIterator[Deployment]:  # noqa: F811  (fixture)
    servers = AuthServers("internal", "redis", redis_url)
    server = await servers.start(refresh_token_grace_period=30)
    yield Deployment(servers, server)
    await servers.close()


@pytest.fixture
async def http(deployment: Deployment) -> AsyncIterator[httpx2.AsyncClient]:
    async with deployment.client() as client:
        yield client


@pytest.fixture(autouse=True)
async def bystander(deployment: Deployment) -> AsyncIterator[None]:
    """Another client's tokens, grant and consent: byte for byte the same after every attack."""
    store = deployment.store
    async with deployment.client() as http:
        client = await add_client(store)
        code = await store_code(store, client, settings=deployment.server.settings)
        response = await redeem(http, code, client)
        assert response.status_code == 200, response.text
        tokens = response.json()
        keys = (
            client_key(client.client_id),
            access_key(tokens["access_token"]),
            refresh_key(tokens["refresh_token"]),
            grant_key(code.grant_id),
        )
        before = {key: await store.get(key) for key in keys}
        assert all(before.values())
        yield
        assert {key: await store.get(key) for key in keys} == before
        assert await is_active(http, tokens["access_token"])


def assert_oauth_error(response: httpx2.Response, error: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error


def assert_error_page(response: httpx2.Response) -> None:
    """A page a person reads, with a 4xx status: no traceback, no redirect to the client."""
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "Traceback" not in response.text


async def client_with_tokens(deployment: Deployment, http: httpx2.AsyncClient) -> tuple[OAuthClient, Any]:
    client = await add_client(deployment.store)
    code = await store_code(deployment.store, client, settings=deployment.server.settings, scope=SCOPES)
    response = await redeem(http, code, client)
    assert response.status_code == 200, response.text
    return client, (code, response.json())


# --- codes ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("garbage", GARBAGE)
async def test_an_unreadable_authorization_code_is_an_invalid_grant(
    deployment: Deployment, http: httpx2.AsyncClient, garbage: str
) -> None:
    client = await add_client(deployment.store)
    code = await store_code(deployment.store, client, settings=deployment.server.settings)
    await deployment.store.set(code_key(code.code), garbage, ttl=60)
    assert_oauth_error(await redeem(http, code, client), "invalid_grant")
    assert await deployment.store.get(code_key(code.code)) is None  # consumed like a code


async def test_an_unreadable_redemption_marker_makes_a_replay_an_invalid_grant(
    deployment: Deployment, http: httpx2.AsyncClient
) -> None:
    client = await add_client(deployment.store)
    code = await store_code(deployment.store, client, settings=deployment.server.settings)
    first = await redeem(http, code, client)
    assert first.status_code == 200, first.text
    await deployment.store.set(redeemed_code_key(code.code), GARBAGE[0], ttl=60)
    assert_oauth_error(await redeem(http, code, client), "invalid_grant")


# --- tokens and grants ---------------------------------------------------------------------------
@pytest.mark.parametrize("garbage", GARBAGE)
async def test_an_unreadable_access_token_record_is_inactive_and_refused_by_the_mcp_server(
    deployment: Deployment, http: httpx2.AsyncClient, garbage: str
) -> None:
    _, (_, tokens) = await client_with_tokens(deployment, http)
    await deployment.store.set(access_key(tokens["access_token"]), garbage, ttl=60)
    assert (await introspect(http, tokens["access_token"])).json() == {"active": False}
    mcp = await http.post(
        "/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"authorization": f"Bearer {tokens['access_token']}", "accept": "application/json"},
    )
    assert mcp.status_code == 401
    assert 'error="invalid_token"' in mcp.headers["www-authenticate"]
    revoked = await http.post("/revoke", data={"token": tokens["access_token"], "client_id": "any"})
    assert revoked.status_code < 500


@pytest.mark.parametrize("garbage", GARBAGE)
async def test_an_unreadable_refresh_token_record_is_an_invalid_grant(
    deployment: Deployment, http: httpx2.AsyncClient, garbage: str
) -> None:
    client, (_, tokens) = await client_with_tokens(deployment, http)
    await deployment.store.set(refresh_key(tokens["refresh_token"]), garbage, ttl=60)
    assert_oauth_error(await refresh(http, tokens["refresh_token"], client), "invalid_grant")
    assert (await introspect(http, tokens["refresh_token"])).json() == {"active": False}


async def test_unreadable_rotation_records_make_a_presented_old_refresh_token_an_invalid_grant(
    deployment: Deployment, http: httpx2.AsyncClient
) -> None:
    client, (_, tokens) = await client_with_tokens(deployment, http)
    rotated = await refresh(http, tokens["refresh_token"], client)
    assert rotated.status_code == 200, rotated.text
    for key in (refresh_retry_key(tokens["refresh_token"]), rotated_refresh_key(tokens["refresh_token"])):
        await deployment.store.set(key, GARBAGE[1], ttl=60)
    assert_oauth_error(await refresh(http, tokens["refresh_token"], client), "invalid_grant")
    assert await is_active(http, rotated.json()["access_token"])  # no reuse proven: nothing ended


async def test_an_unreadable_grant_record_neither_breaks_refresh_nor_revocation(
    deployment: Deployment, http: httpx2.AsyncClient
) -> None:
    client, (code, tokens) = await client_with_tokens(deployment, http)
    await deployment.store.set(grant_key(code.grant_id), GARBAGE[0], ttl=60)
    await deployment.store.sadd(grant_members_key(code.grant_id), "auth:access:no-such-token", ttl=60)
    renewed = await refresh(http, tokens["refresh_token"], client)
    assert renewed.status_code == 200, renewed.text
    revoked = await http.post("/revoke", data={"token": renewed.json()["refresh_token"], **client.auth()})
    assert revoked.status_code == 200, revoked.text
    assert not await is_active(http, renewed.json()["access_token"])


async def test_an_unreadable_signing_key_set_is_replaced_and_jwts_work(deployment: Deployment) -> None:
    jwt = await deployment.servers.start(token_format="jwt")
    await deployment.store.set(JWKS_KEY, GARBAGE[1])
    try:
        async with jwt.client() as http:
            published = await http.get("/jwks")
            assert published.status_code == 200, published.text
            assert published.json()["keys"]
            client = await add_client(deployment.store)
            code = await store_code(deployment.store, client, settings=jwt.settings)
            issued = await redeem(http, code, client)
            assert issued.status_code == 200, issued.text
            access = issued.json()["access_token"]
            assert await is_active(http, access)
            claims = await introspect(http, access)
            await deployment.store.set(jti_key(claims.json()["jti"]), GARBAGE[2], ttl=60)
            assert (await introspect(http, access)).json() == {"active": False}
    finally:
        await deployment.servers.stop([jwt])
        await deployment.store.delete(JWKS_KEY)


# --- clients -------------------------------------------------------------------------------------
@pytest.mark.parametrize("garbage", GARBAGE)
async def test_an_unreadable_client_record_is_an_unknown_client(
    deployment: Deployment, http: httpx2.AsyncClient, garbage: str
) -> None:
    client = await add_client(deployment.store)
    await deployment.store.set(client_key(client.client_id), garbage)
    assert_error_page(await http.get("/authorize", params=authorize_params(client.client_id, new_pkce())))
    token = await http.post("/token", data={"grant_type": "authorization_code", "code": "c", **client.auth()})
    assert_oauth_error(token, "invalid_client", 401)
    await deployment.store.delete(client_key(client.client_id))


async def test_an_unreadable_disabled_mark_still_refuses_the_client(
    deployment: Deployment, http: httpx2.AsyncClient
) -> None:
    """Failing closed: a mark that says "disabled" in a form nobody reads is still a mark."""
    client, (_, tokens) = await client_with_tokens(deployment, http)
    await deployment.store.set(disabled_client_key(client.client_id), GARBAGE[0])
    assert_oauth_error(await refresh(http, tokens["refresh_token"], client), "invalid_client", 401)
    assert_error_page(await http.get("/authorize", params=authorize_params(client.client_id, new_pkce())))
    await deployment.store.delete(disabled_client_key(client.client_id))


async def test_an_unreadable_cached_metadata_document_is_not_a_client(
    deployment: Deployment, http: httpx2.AsyncClient
) -> None:
    url = "https://client.example/unreadable.json"
    await deployment.store.set(metadata_document_key(url), GARBAGE[1], ttl=60)
    await deployment.store.set(metadata_document_failure_key(url), GARBAGE[0], ttl=60)  # no fetch
    assert_error_page(await http.get("/authorize", params=authorize_params(url, new_pkce())))


# --- browsers, authorization requests, consent -----------------------------------------------------
async def signed_in_flow(http: httpx2.AsyncClient) -> str:
    """A registered client authorized through the real flow; returns its client_id."""
    client_id: str = (await register(http))["client_id"]
    response = await run_flow(http, authorize_params(client_id, new_pkce()))
    assert is_client_redirect(response), response.text
    return client_id


async def test_an_unreadable_browser_session_means_signing_in_again(
    deployment: Deployment, http: httpx2.AsyncClient
) -> None:
    client_id = await signed_in_flow(http)
    await deployment.store.set(session_key(http.cookies["mcp_as_session"]), GARBAGE[0], ttl=60)
    response = await http.get("/authorize", params=authorize_params(client_id, new_pkce()))
    assert response.status_code in (302, 303), response.text
    assert urlsplit(response.headers["location"]).path.endswith("/login")


async def test_an_unreadable_pending_request_is_no_longer_valid(
    deployment: Deployment, http: httpx2.AsyncClient
) -> None:
    client_id = (await register(http))["client_id"]
    started = await http.get("/authorize", params=authorize_params(client_id, new_pkce()))
    location = started.headers["location"]
    request_id = parse_qs(urlsplit(location).query)["request"][0]
    await deployment.store.set(pending_key(request_id), GARBAGE[2], ttl=60)
    assert_error_page(await http.get(location))


async def test_unreadable_open_request_times_and_consent_only_mean_asking_again(
    deployment: Deployment, http: httpx2.AsyncClient
) -> None:
    client_id = await signed_in_flow(http)
    session = await records.read(deployment.store, session_key(http.cookies["mcp_as_session"]), SessionRecord)
    assert session is not None
    assert session.subject is not None
    await deployment.store.hset(open_requests_key(session.binding), "unreadable", GARBAGE[0])
    await deployment.store.set(consent_key(session.subject, client_id), GARBAGE[1], ttl=60)
    response = await run_flow(http, authorize_params(client_id, new_pkce()))
    assert is_client_redirect(response), response.text
    assert "code" in parse_qs(urlsplit(response.headers["location"]).query)


async def test_unreadable_index_members_and_revocation_times_leave_the_account_page_working(
    deployment: Deployment, http: httpx2.AsyncClient
) -> None:
    client_id = await signed_in_flow(http)
    store = deployment.store
    await store.index_add(apps_key("demo"), GARBAGE[0], 60)
    await store.index_add(app_grants_key("demo", client_id), GARBAGE[2], 60)
    await store.set(app_revoked_key("demo", client_id), GARBAGE[1], ttl=60)
    assert client_id in await listed_apps(http)
    revoked = await revoke(http, client_id)
    assert revoked.status_code in (200, 303), revoked.text
    assert client_id not in await listed_apps(http)
    response = await run_flow(http, authorize_params(client_id, new_pkce()))
    assert is_client_redirect(response), response.text  # the unreadable time refused no new code


async def test_an_unreadable_upstream_login_state_is_not_a_valid_sign_in_response(
    deployment: Deployment,
) -> None:
    federated = await deployment.servers.start(
        upstream_oidc_issuer="https://idp.invalid", upstream_oidc_client_id="reference-server"
    )
    try:
        async with federated.client() as http:
            client = await add_client(deployment.store)
            started = await http.get("/authorize", params=authorize_params(client.client_id, new_pkce()))
            assert started.status_code in (302, 303), started.text  # the browser has a session now
            await deployment.store.set(upstream_state_key("some-state"), GARBAGE[1], ttl=60)
            answer = await http.get("/login/callback", params={"state": "some-state", "code": "c"})
            assert_error_page(answer)
            assert "not valid" in answer.text
    finally:
        await deployment.servers.stop([federated])


# --- counters ------------------------------------------------------------------------------------
async def test_an_unreadable_rate_limit_counter_starts_again(deployment: Deployment) -> None:
    address = client_address()
    await deployment.store.set(rate_limit_key("token", address), GARBAGE[0], ttl=60)
    async with deployment.client(local_address=address) as http:
        assert_oauth_error(
            await http.post("/token", data={"grant_type": "nonsense"}), "unsupported_grant_type"
        )
    assert await deployment.store.get(rate_limit_key("token", address)) == "1"


# --- the MCP server's own records ----------------------------------------------------------------
async def test_an_unreadable_note_is_left_out_of_the_list(
    deployment: Deployment, http: httpx2.AsyncClient
) -> None:
    _, (_, tokens) = await client_with_tokens(deployment, http)
    mcp = Mcp(http, LEGACY)
    added = (await mcp.call_tool("notes_add", tokens["access_token"], text="readable"))["structuredContent"]
    await deployment.store.hset(notebook_key("demo"), "unreadable", GARBAGE[1])
    listed = await mcp.post("tools/call", {"name": "notes_list", "arguments": {}}, tokens["access_token"])
    assert listed.status_code == 200, listed.text
    notes = message(listed)["result"]["structuredContent"]["notes"]
    assert added["id"] in [note["id"] for note in notes]
    assert "unreadable" not in [note["id"] for note in notes]
    await deployment.store.hdel(notebook_key("demo"), "unreadable")


async def test_unreadable_task_records_are_a_task_not_found_or_no_outcome(
    deployment: Deployment, http: httpx2.AsyncClient
) -> None:
    _, (_, tokens) = await client_with_tokens(deployment, http)
    tasks = TaskClient(http, "/mcp", tokens["access_token"])
    finished = await tasks.start("count_slowly", to=1000, seconds_per_step=0.02)
    await tasks.cancel(finished)
    assert (await tasks.get(finished))["status"] == "cancelled"
    await deployment.store.set(task_outcome_key(finished), GARBAGE[1], ttl=60)
    await deployment.store.hset(task_key(finished), "answer:title", GARBAGE[0])
    seen = await tasks.get(finished)  # the outcome absent: the task as its progress last said
    assert seen["taskId"] == finished
    assert seen["status"] in ("working", "failed")

    await deployment.store.hset(task_key(finished), "meta", GARBAGE[2])
    status, error = await tasks.error("tasks/get", {"taskId": finished})
    assert (status, error["code"]) == (400, -32602)  # as for a task that never existed
    assert error["message"] == "Failed to retrieve task: Task not found"
