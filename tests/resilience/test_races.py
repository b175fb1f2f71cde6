"""Races on the authorization server: single-use artefacts, rotation, registration and login.

Run on both stores: in memory (one process), and on Redis with two instances sharing it, the
racing requests split between them, so the atomicity comes from Redis and not from one event
loop. The policies under test (docs/oauth.md, "Concurrency"):
- an authorization code is redeemed exactly once; the other presentations are `invalid_grant`,
  and since they carry the client's own PKCE proof they are a proven replay: the grant ends, so no
  token from it stays alive;
- without a grace period (REFRESH_TOKEN_GRACE_PERIOD=0, set for this module), a refresh token
  rotates exactly once; concurrent presentations are reuse, which ends the grant, so no token from
  it stays alive either (with the default period, tests/resilience/test_refresh_grace_across_instances.py);
- concurrent registrations each get their own working client, and concurrent logins of
  different users each get their own session, consent and token.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx2
import pytest

from auth_server.users import hash_password
from tests.e2e.login_driver import authorize
from tests.fixtures.redis_server import RedisServer
from tests.resilience.cluster import (
    CALLBACK,
    TIMEOUT,
    Cluster,
    RoundRobin,
    authorization_code,
    build_cluster,
    call,
    http_client,
    metadata,
    mint,
    modern_call,
    pkce,
    register,
    running,
    structured,
)

pytestmark = pytest.mark.timeout(90)

CODE_RACERS = 100
REFRESH_RACERS = 50
REGISTRATIONS = 40
USERS = {f"racer{i}": f"racer-password-{i}" for i in range(8)}
USERS["demo"] = "demo"
ALREADY_USED = "the authorization code is invalid, expired or already used"
CODE_REPLAYED = "the authorization code was replayed; its grant is revoked"
REFRESH_INVALID = "the refresh token is invalid, expired or revoked"
REVOKED_IN_FLIGHT = "the grant was revoked while this request was in flight"


@pytest.fixture(scope="module", params=["memory", "redis"])
def cluster(
    request: pytest.FixtureRequest, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    on_redis = request.param == "redis"
    deployment = build_cluster(
        "internal",
        Path(tmp_path_factory.mktemp(f"races-{request.param}")),
        redis_url=redis_server.url if on_redis else None,
        instances=2 if on_redis else 1,
        env={
            "AUTH_USERS": json.dumps({name: hash_password(pw) for name, pw in USERS.items()}),
            "REFRESH_TOKEN_GRACE_PERIOD": "0",
        },
    )
    with running(deployment):
        yield deployment


def spread(cluster: Cluster, url: str, index: int) -> str:
    """`url` (on the public address) sent to instance `index % N`: racers on every instance."""
    return url.replace(cluster.public_url, cluster.url(index % len(cluster.ports)), 1)


async def race(cluster: Cluster, url: str, forms: list[dict[str, str]]) -> list[httpx2.Response]:
    limits = httpx2.Limits(max_connections=len(forms), max_keepalive_connections=len(forms))
    async with httpx2.AsyncClient(timeout=TIMEOUT, trust_env=False, limits=limits) as http:
        return await asyncio.gather(
            *(http.post(spread(cluster, url, i), data=f) for i, f in enumerate(forms))
        )


def description(response: httpx2.Response) -> str:
    assert response.status_code == 400, (response.status_code, response.text)
    body = response.json()
    assert body["error"] == "invalid_grant", body
    return str(body.get("error_description", ""))


async def assert_dead(cluster: Cluster, meta: dict[str, Any], client_id: str, tokens: dict[str, Any]) -> None:
    """Neither the access token nor the refresh token of `tokens` works any more."""
    async with httpx2.AsyncClient(timeout=TIMEOUT, trust_env=False) as http:
        body, headers = modern_call("whoami", {}, tokens["access_token"])
        for index in range(len(cluster.ports)):
            refused = await http.post(f"{cluster.url(index)}/mcp", json=body, headers=headers)
            assert refused.status_code == 401, refused.text
        if tokens.get("refresh_token"):
            form = {
                "grant_type": "refresh_token",
                "refresh_token": tokens["refresh_token"],
                "client_id": client_id,
            }
            assert description(await http.post(meta["token_endpoint"], data=form)) == REFRESH_INVALID


async def test_100_parallel_redemptions_of_one_code_redeem_it_once_and_the_proven_replays_end_the_grant(
    cluster: Cluster,
) -> None:
    with http_client() as browser:
        meta = metadata(browser, cluster)
        client_id = register(browser, meta)
        verifier, challenge = pkce()
        code = authorization_code(browser, cluster, meta, client_id, challenge)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "client_id": client_id,
        "code_verifier": verifier,
    }
    answers = await race(cluster, meta["token_endpoint"], [form] * CODE_RACERS)

    assert all(a.status_code in (200, 400) for a in answers), Counter(a.status_code for a in answers)
    issued = [a.json() for a in answers if a.status_code == 200]
    outcomes = Counter(description(a) for a in answers if a.status_code == 400)
    # Exactly one request consumed the code: it either got the token, or saw its grant end while
    # it was still writing it (a replay proved the leak meanwhile). Everyone else: already used.
    assert len(issued) + outcomes[CODE_REPLAYED] == 1, (len(issued), outcomes)
    assert outcomes[ALREADY_USED] == CODE_RACERS - 1, outcomes
    for tokens in issued:
        await assert_dead(cluster, meta, client_id, tokens)


async def test_without_a_grace_period_50_parallel_refreshes_rotate_once_and_the_reuse_ends_the_grant(
    cluster: Cluster,
) -> None:
    with http_client() as browser:
        minted = mint(cluster, browser)
    assert minted.refresh_token
    form = {
        "grant_type": "refresh_token",
        "refresh_token": minted.refresh_token,
        "client_id": minted.client_id,
    }
    answers = await race(cluster, minted.metadata["token_endpoint"], [form] * REFRESH_RACERS)

    assert all(a.status_code in (200, 400) for a in answers), Counter(a.status_code for a in answers)
    rotated = [a.json() for a in answers if a.status_code == 200]
    outcomes = Counter(description(a) for a in answers if a.status_code == 400)
    assert len(rotated) + outcomes[REVOKED_IN_FLIGHT] == 1, (len(rotated), outcomes)
    assert outcomes[REFRESH_INVALID] == REFRESH_RACERS - 1, outcomes
    # The reuse ended the grant: the original access token and whatever the winner got are dead.
    await assert_dead(cluster, minted.metadata, minted.client_id, {"access_token": minted.access_token})
    for tokens in rotated:
        await assert_dead(cluster, minted.metadata, minted.client_id, tokens)


async def test_parallel_registrations_each_get_a_distinct_client_that_can_start_an_authorization(
    cluster: Cluster,
) -> None:
    with http_client() as browser:
        meta = metadata(browser, cluster)
    body = {
        "client_name": "racing registration",
        "redirect_uris": [CALLBACK],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }
    limits = httpx2.Limits(max_connections=REGISTRATIONS)
    async with httpx2.AsyncClient(timeout=TIMEOUT, trust_env=False, limits=limits) as http:
        answers = await asyncio.gather(
            *(
                http.post(spread(cluster, meta["registration_endpoint"], i), json=body)
                for i in range(REGISTRATIONS)
            )
        )
        assert [a.status_code for a in answers] == [201] * REGISTRATIONS, [
            a.text for a in answers if a.status_code != 201
        ]
        client_ids = [a.json()["client_id"] for a in answers]
        assert len(set(client_ids)) == REGISTRATIONS
        _, challenge = pkce()
        starts = await asyncio.gather(
            *(
                http.get(
                    spread(cluster, meta["authorization_endpoint"], i + 1),
                    params={
                        "response_type": "code",
                        "client_id": client_id,
                        "redirect_uri": CALLBACK,
                        "code_challenge": challenge,
                        "code_challenge_method": "S256",
                        "state": "s",
                    },
                )
                for i, client_id in enumerate(client_ids)
            )
        )
    # A known client with a registered redirect URI is sent on to sign in (never an error page).
    for start in starts:
        assert start.status_code in (302, 303), (start.status_code, start.text[:300])
        assert "/login" in start.headers["location"], start.headers["location"]


async def test_parallel_logins_of_different_users_each_get_their_own_session_consent_and_token(
    cluster: Cluster,
) -> None:
    def log_in(name: str) -> tuple[str, bool, bool]:
        balancer = RoundRobin(cluster)  # each browser's requests alternate between the instances
        with http_client(balancer.transport()) as browser:
            meta = metadata(browser, cluster)
            client_id = register(browser, meta, name=f"{name}'s client")
            verifier, challenge = pkce()
            query = {
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": CALLBACK,
                "scope": "mcp:tools:read notes:read notes:write",
                "state": name,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "resource": cluster.mcp_url,
            }
            result = authorize(
                f"{meta['authorization_endpoint']}?{urlencode(query)}",
                username=name,
                password=USERS[name],
                client=browser,
            )
            assert result.code, result.redirect_url
            assert result.state == name, result.redirect_url
            form = {
                "grant_type": "authorization_code",
                "code": result.code,
                "redirect_uri": CALLBACK,
                "client_id": client_id,
                "code_verifier": verifier,
            }
            token = browser.post(meta["token_endpoint"], data=form)
            assert token.status_code == 200, token.text
            return str(token.json()["access_token"]), result.saw_login, result.saw_consent

    names = [name for name in USERS if name != "demo"]
    logged_in = await asyncio.wait_for(asyncio.gather(*(asyncio.to_thread(log_in, n) for n in names)), 60)
    assert all(saw_login and saw_consent for _, saw_login, saw_consent in logged_in)
    async with httpx2.AsyncClient(timeout=TIMEOUT, trust_env=False) as http:
        for index, (name, (token, _, _)) in enumerate(zip(names, logged_in, strict=True)):
            url = f"{cluster.url(index % len(cluster.ports))}/mcp"
            assert structured(await call(http, url, token, "whoami"))["subject"] == name
            await call(http, url, token, "notes_add", text=f"only {name} sees this")
        for index, (name, (token, _, _)) in enumerate(zip(names, logged_in, strict=True)):
            url = f"{cluster.url((index + 1) % len(cluster.ports))}/mcp"
            notes = structured(await call(http, url, token, "notes_list"))["notes"]
            assert [n["text"] for n in notes] == [f"only {name} sees this"]
