"""Attacks on the account page and logout (issue 9 item 11), against real servers in both modes.

Each deployment is what `make dev-internal` or `make dev-external` serves, on 127.0.0.1 ports of
its own, over memory or a real Redis: internal (one app: MCP server + authorization server) and
external (the standalone AS, and an MCP server introspecting it). Browsers are httpx clients with
cookie jars of their own; the MCP client speaks 2026-07-28 `tools/call`.

What must hold whatever an attacker does: only the signed-in user ends their own apps or their own
session, only through the forms the AS itself served them (CSRF), and once an app is revoked
nothing it held works any more: its access token at /mcp (at once in internal mode, on every
instance; within INTROSPECTION_CACHE_TTL in external mode), its refresh token, a code it kept.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest

from auth_server.app import create_auth_app
from mcp_server.app import create_app
from shared.settings import Settings
from shared.storage.base import Store
from shared.storage.memory import MemoryStore
from shared.storage.records import app_revoked_key
from shared.storage.redis import RedisStore
from tests.fixtures.local_server import LocalServer, stop_all
from tests.integration.auth.account_helpers import (
    PASSWORD,
    approved_code,
    authorize_app,
    listed_apps,
    log_out,
    revoke,
    revoke_forms,
    sign_in_to_account,
    users,
)
from tests.integration.auth.flow_helpers import exchange_code, hidden_fields, new_pkce, register
from tests.integration.auth.helpers import OAuthClient, is_active, make_settings, refresh, server_client
from tests.resilience.cluster import modern_call

USERS = ("alice", "bob", "mallory")
CACHE_TTL = 1  # external mode: how long the MCP server may keep an active introspection answer
SETTLE_TIMEOUT = 15.0  # generous bound on CACHE_TTL plus a loaded machine


@dataclass
class Deployment:
    """The servers of one deployment, and clients for them (closed with the deployment)."""

    mode: str
    as_server: LocalServer
    mcp_server: LocalServer
    store: Store
    storage: dict[str, Any]  # the settings naming the Store (REDIS_URL and prefix, or none)
    extra: list[LocalServer] = field(default_factory=list)
    _clients: list[httpx2.AsyncClient] = field(default_factory=list)

    def browser(self) -> httpx2.AsyncClient:
        """A browser (own cookie jar, own address) at the authorization server."""
        client = server_client(self.as_server.url)
        self._clients.append(client)
        return client

    def mcp(self, server: LocalServer | None = None) -> httpx2.AsyncClient:
        client = server_client((server or self.mcp_server).url)
        self._clients.append(client)
        return client

    async def close(self) -> None:
        for client in self._clients:
            await client.aclose()
        await stop_all(
            [self.as_server, *([self.mcp_server] if self.mcp_server is not self.as_server else [])]
        )
        await stop_all(self.extra)
        await self.store.close()


def _settings(mode: str, storage: dict[str, Any], *, mcp_port: int, as_port: int, **extra: Any) -> Settings:
    return make_settings(
        auth_mode=mode,
        mcp_port=mcp_port,
        auth_port=as_port,
        auth_users=users(*USERS),
        introspection_cache_ttl=CACHE_TTL,
        log_level="WARNING",
        **storage,
        **extra,
    )


async def start(mode: str, backend: str, redis_url: str | None, **extra: Any) -> Deployment:
    mcp_server = LocalServer.reserve()
    storage: dict[str, Any] = {"redis_url": None}
    store: Store = MemoryStore()
    if backend == "redis":
        assert redis_url is not None
        prefix = f"test:{uuid.uuid4().hex}:"
        storage = {"redis_url": redis_url, "redis_key_prefix": prefix}
        store = RedisStore.from_url(redis_url, key_prefix=prefix)
    if mode == "internal":
        settings = _settings(mode, storage, mcp_port=mcp_server.port, as_port=3001, **extra)
        await mcp_server.start(create_app(settings, store if backend == "memory" else None))
        return Deployment(mode, mcp_server, mcp_server, store, storage)
    as_server = LocalServer.reserve()
    settings = _settings(
        mode,
        storage,
        mcp_port=mcp_server.port,
        as_port=as_server.port,
        auth_server_url=as_server.url,
        **extra,
    )
    await as_server.start(create_auth_app(settings, store if backend == "memory" else None))
    await mcp_server.start(create_app(settings, MemoryStore() if backend == "memory" else None))
    return Deployment(mode, as_server, mcp_server, store, storage)


@pytest.fixture(
    scope="module",
    params=[
        pytest.param(("internal", "memory"), id="internal-memory"),
        pytest.param(("internal", "redis"), id="internal-redis"),
        pytest.param(("external", "memory"), id="external-memory"),
        pytest.param(("external", "redis"), id="external-redis"),
    ],
)
async def deployment(request: pytest.FixtureRequest) -> AsyncIterator[Deployment]:
    mode, backend = request.param
    redis_url = request.getfixturevalue("redis_url") if backend == "redis" else None
    running = await start(mode, backend, redis_url)
    yield running
    await running.close()


async def whoami(mcp: httpx2.AsyncClient, token: str) -> httpx2.Response:
    body, headers = modern_call("whoami", token=token)
    return await mcp.post("/mcp", json=body, headers=headers)


async def eventually(check: Callable[[], Awaitable[bool]]) -> bool:
    """Whether `check` comes true within SETTLE_TIMEOUT (polled; for caches with a documented bound)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while not await check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


async def signed_in(deployment: Deployment, user: str) -> httpx2.AsyncClient:
    browser = deployment.browser()
    assert (await sign_in_to_account(browser, user, PASSWORD)).status_code == 303
    return browser


# -- CSRF ----------------------------------------------------------------------------------------


async def test_a_forged_logout_post_ends_no_session(deployment: Deployment) -> None:
    victim = deployment.browser()
    app = await authorize_app(victim, username="alice", password=PASSWORD)
    other = await signed_in(deployment, "mallory")
    mallorys_token = hidden_fields((await other.get("/logout")).text)["csrf"]
    victims_revoke_token = revoke_forms((await victim.get("/account")).text)[app.client_id]
    for forged in ({"go": "1"}, {"csrf": ""}, {"csrf": mallorys_token}, {"csrf": victims_revoke_token}):
        response = await victim.post("/logout", data=forged)
        assert response.status_code == 403, forged
    assert await listed_apps(victim) == [app.client_id]  # still signed in


async def test_a_forged_revoke_post_ends_nothing(deployment: Deployment) -> None:
    victim = deployment.browser()
    app = await authorize_app(victim, username="alice", password=PASSWORD)
    attacker = deployment.browser()
    await authorize_app(attacker, username="mallory", password=PASSWORD)
    mallorys_token = next(iter(revoke_forms((await attacker.get("/account")).text).values()))
    victims_logout_token = hidden_fields((await victim.get("/logout")).text)["csrf"]
    for csrf in (None, "", mallorys_token, victims_logout_token):
        data = {"client_id": app.client_id} if csrf is None else {"client_id": app.client_id, "csrf": csrf}
        response = await victim.post("/account/revoke", data=data)
        assert response.status_code == 403, csrf
    assert await is_active(deployment.browser(), app.access_token)
    assert app.client_id in await listed_apps(victim)


async def test_a_forged_sign_in_post_signs_the_victim_into_nothing(deployment: Deployment) -> None:
    """Login CSRF: a page elsewhere posts the attacker's own credentials into the victim's browser
    (the victim's later consents would then land in the attacker's account)."""
    victim = deployment.browser()
    data = {"csrf": "chosen-by-the-attacker", "username": "mallory", "password": PASSWORD}
    response = await victim.post("/account/login", data=data)
    assert response.status_code == 403
    assert "set-cookie" not in response.headers
    assert 'name="password"' in (await victim.get("/account")).text  # signed out still


# -- whose apps ----------------------------------------------------------------------------------


async def test_a_user_cannot_revoke_another_users_app(deployment: Deployment) -> None:
    bob = deployment.browser()
    bobs_app = await authorize_app(bob, username="bob", password=PASSWORD)
    mallory = deployment.browser()
    await authorize_app(mallory, username="mallory", password=PASSWORD)
    csrf = next(iter(revoke_forms((await mallory.get("/account")).text).values()))
    response = await mallory.post("/account/revoke", data={"csrf": csrf, "client_id": bobs_app.client_id})
    assert response.status_code == 404
    assert await is_active(deployment.browser(), bobs_app.access_token)
    assert await listed_apps(bob) == [bobs_app.client_id]
    # Not even a "revoked" marker is written for a pair that is not the signed-in user's.
    assert await deployment.store.get(app_revoked_key("mallory", bobs_app.client_id)) is None


async def test_revoking_a_shared_client_ends_only_the_revoking_users_grant(deployment: Deployment) -> None:
    bob, mallory = deployment.browser(), deployment.browser()
    client_id = (await register(bob, client_name="Shared"))["client_id"]
    bobs = await authorize_app(bob, client_id=client_id, username="bob", password=PASSWORD)
    mallorys = await authorize_app(mallory, client_id=client_id, username="mallory", password=PASSWORD)
    assert (await revoke(mallory, client_id)).status_code == 303
    back_channel = deployment.browser()
    assert not await is_active(back_channel, mallorys.refresh_token)
    assert await is_active(back_channel, bobs.refresh_token)
    assert await is_active(back_channel, bobs.access_token)


async def test_a_signed_out_browser_cannot_revoke(deployment: Deployment) -> None:
    alice = deployment.browser()
    app = await authorize_app(alice, username="alice", password=PASSWORD)
    csrf = revoke_forms((await alice.get("/account")).text)[app.client_id]
    stranger = deployment.browser()  # no cookie at all, but the right form fields
    response = await stranger.post("/account/revoke", data={"csrf": csrf, "client_id": app.client_id})
    assert response.status_code == 401
    cookie_name, cookie = next(iter(alice.cookies.items()))
    assert (await log_out(alice)).status_code == 303
    replay = deployment.browser()  # the cookie of the ended session, replayed
    replay.cookies.set(cookie_name, cookie)
    response = await replay.post("/account/revoke", data={"csrf": csrf, "client_id": app.client_id})
    assert response.status_code == 401
    assert await is_active(deployment.browser(), app.access_token)


async def test_revoking_an_unknown_or_huge_client_id_writes_nothing(deployment: Deployment) -> None:
    mallory = deployment.browser()
    await authorize_app(mallory, username="mallory", password=PASSWORD)
    csrf = next(iter(revoke_forms((await mallory.get("/account")).text).values()))
    for client_id in ("never-registered", "https://evil.example/" + "a" * 5000, ""):
        response = await mallory.post("/account/revoke", data={"csrf": csrf, "client_id": client_id})
        assert response.status_code == 404
        assert await deployment.store.get(app_revoked_key("mallory", client_id)) is None


async def test_a_hostile_client_name_is_shown_as_text_on_the_account_page(deployment: Deployment) -> None:
    alice = deployment.browser()
    name = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    await authorize_app(alice, username="alice", password=PASSWORD, client_name=name)
    page = await alice.get("/account")
    assert "<script>" not in page.text
    assert "<img" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "unverified name" in page.text


# -- what a revoked app still holds --------------------------------------------------------------


async def test_a_revoked_apps_access_token_is_refused_at_mcp(deployment: Deployment) -> None:
    alice = deployment.browser()
    app = await authorize_app(alice, username="alice", password=PASSWORD)
    mcp = deployment.mcp()
    assert (await whoami(mcp, app.access_token)).status_code == 200  # and now cached, in external mode
    assert (await revoke(alice, app.client_id)).status_code == 303
    assert not await is_active(deployment.browser(), app.access_token)  # the AS: at once, both modes

    async def refused() -> bool:
        return (await whoami(mcp, app.access_token)).status_code == 401

    if deployment.mode == "internal":
        assert await refused()  # the in-process validator reads the Store: the very next request
    else:
        assert await eventually(refused)  # the MCP server's introspection cache: INTROSPECTION_CACHE_TTL
    response = await whoami(mcp, app.access_token)
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_a_revoked_apps_refresh_token_gets_invalid_grant(deployment: Deployment) -> None:
    alice = deployment.browser()
    app = await authorize_app(alice, username="alice", password=PASSWORD)
    assert (await revoke(alice, app.client_id)).status_code == 303
    response = await refresh(deployment.browser(), app.refresh_token, OAuthClient(app.client_id))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_a_code_the_app_held_back_is_refused_after_the_revocation(deployment: Deployment) -> None:
    """The app gets a code silently (consent remembered), waits for the user to revoke it, then
    redeems the code to get back in."""
    alice = deployment.browser()
    app = await authorize_app(alice, username="alice", password=PASSWORD)
    pkce = new_pkce()
    code = await approved_code(alice, app.client_id, pkce, username="alice", password=PASSWORD)
    assert (await revoke(alice, app.client_id)).status_code == 303
    response = await exchange_code(deployment.browser(), code, app.client_id, pkce)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert app.client_id not in await listed_apps(alice)


async def test_a_held_back_code_redeemed_while_the_user_revokes_leaves_nothing_alive(
    deployment: Deployment,
) -> None:
    """The same attack, timed: the redemption and the revocation race; whichever order the Store
    sees their steps in, no token of the app may work afterwards."""
    alice = deployment.browser()
    app = await authorize_app(alice, username="alice", password=PASSWORD)
    pkce = new_pkce()
    code = await approved_code(alice, app.client_id, pkce, username="alice", password=PASSWORD)
    forms = revoke_forms((await alice.get("/account")).text)
    thief = deployment.browser()
    redeemed, revoked = await asyncio.gather(
        exchange_code(thief, code, app.client_id, pkce),
        alice.post("/account/revoke", data={"csrf": forms[app.client_id], "client_id": app.client_id}),
    )
    assert revoked.status_code == 303
    checker = deployment.browser()
    if redeemed.status_code == 200:
        for token in (redeemed.json()["access_token"], redeemed.json()["refresh_token"]):
            assert not await is_active(checker, token)
    else:
        assert redeemed.json()["error"] == "invalid_grant"
    assert not await is_active(checker, app.refresh_token)


# -- JWT access tokens and several instances ------------------------------------------------------


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_a_revoked_apps_jwt_is_refused_by_the_in_process_validator_and_introspection(
    backend: str, request: pytest.FixtureRequest
) -> None:
    redis_url = request.getfixturevalue("redis_url") if backend == "redis" else None
    jwt = await start("internal", backend, redis_url, token_format="jwt")
    try:
        alice = jwt.browser()
        app = await authorize_app(alice, username="alice", password=PASSWORD)
        assert app.access_token.count(".") == 2
        mcp = jwt.mcp()
        assert (await whoami(mcp, app.access_token)).status_code == 200
        assert (await revoke(alice, app.client_id)).status_code == 303
        assert (await whoami(mcp, app.access_token)).status_code == 401
        assert not await is_active(jwt.browser(), app.access_token)
        jti = json.loads(base64.urlsafe_b64decode(app.access_token.split(".")[1] + "=="))["jti"]
        assert await jwt.store.get(f"auth:jti:{jti}") is None  # the record every validator reads
    finally:
        await jwt.close()


async def test_a_revocation_on_one_instance_is_refused_at_once_by_another(redis_url: str) -> None:
    """Two instances of `make dev-internal` on one Redis: the user revokes on the first, the app
    calls the second."""
    first = await start("internal", "redis", redis_url)
    try:
        second = LocalServer.reserve()
        settings = _settings("internal", first.storage, mcp_port=first.mcp_server.port, as_port=3001)
        await second.start(create_app(settings))
        first.extra.append(second)
        alice = first.browser()
        app = await authorize_app(alice, username="alice", password=PASSWORD)
        other = first.mcp(second)
        assert (await whoami(other, app.access_token)).status_code == 200
        assert (await revoke(alice, app.client_id)).status_code == 303
        assert (await whoami(other, app.access_token)).status_code == 401
    finally:
        await first.close()
