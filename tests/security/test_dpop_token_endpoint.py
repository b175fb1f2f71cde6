"""Attacks on DPoP at the token endpoint (RFC 9449 sections 4.3, 5, 8 and 10), in all four
deployments of the authorization server.

A bad proof gets 400 `invalid_dpop_proof` before any grant is looked at, so it neither issues a
token nor uses up the code or refresh token it came with; a stolen code or refresh token that is
bound to a key is useless with any other key.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx2
import pytest
import redis.asyncio as aioredis

from auth_server.urls import endpoint_url
from shared.settings import Settings
from shared.storage import records
from shared.storage.base import Store
from tests.fixtures.dpop_client import DPoPKey
from tests.integration.auth.conftest import ALL_DEPLOYMENTS, HttpFactory
from tests.integration.auth.helpers import add_client, code_form, oauth_refused, store_code

# In every deployment: a proof names the token endpoint's URL (each mode's issuer), and its jti is
# remembered in the store.
DEPLOYMENTS = ALL_DEPLOYMENTS


def refused(response: httpx2.Response, error: str = "invalid_dpop_proof") -> None:
    oauth_refused(response, error)
    assert "access_token" not in response.text


@pytest.mark.parametrize(
    ("rule", "proof"),
    [
        ("htm GET", {"htm": "GET"}),
        ("the MCP endpoint's URL", {"htu": "http://127.0.0.1:3232/mcp"}),
        ("another host", {"htu": "https://evil.example/token"}),
        ("stale iat", {"iat": int(time.time()) - 3600}),
        ("future iat", {"iat": int(time.time()) + 3600}),
        ("no jti", {"jti": None}),
        ("typ JWT", {"header": {"typ": "JWT"}}),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
async def test_a_proof_that_breaks_a_rule_is_refused_and_the_code_stays_usable(
    http: httpx2.AsyncClient, store: Store, settings: Settings, rule: str, proof: dict[str, Any]
) -> None:
    client = await add_client(store)
    code = await store_code(store, client, settings=settings)
    key = DPoPKey.generate()
    bad = {"DPoP": key.proof("POST", endpoint_url(settings, "token"), **proof)}
    refused(await http.post("/token", data=code_form(code, client), headers=bad))
    good = {"DPoP": key.proof("POST", endpoint_url(settings, "token"))}
    assert (await http.post("/token", data=code_form(code, client), headers=good)).status_code == 200


async def test_a_replayed_proof_is_refused(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    proof = {"DPoP": DPoPKey.generate().proof("POST", endpoint_url(settings, "token"))}
    first = await store_code(store, client, settings=settings)
    assert (await http.post("/token", data=code_form(first, client), headers=proof)).status_code == 200
    second = await store_code(store, client, settings=settings)
    refused(await http.post("/token", data=code_form(second, client), headers=proof))


@pytest.mark.parametrize(
    "as_deployment", [d for d in DEPLOYMENTS if d.values[0][1] == "redis"], indirect=True
)
async def test_a_proof_spent_at_one_instance_is_refused_at_another_on_the_same_redis(
    make_http: HttpFactory, store: Store, settings: Settings
) -> None:
    # Two authorization servers over one Redis, as two replicas behind a load balancer.
    first_instance = await make_http()
    # With a setting given (the one it has anyway), make_http starts a server of its own.
    second_instance = await make_http(rate_limit_per_minute=settings.rate_limit_per_minute)
    client = await add_client(store)
    proof = {"DPoP": DPoPKey.generate().proof("POST", endpoint_url(settings, "token"))}
    code = await store_code(store, client, settings=settings)
    spent = await first_instance.post("/token", data=code_form(code, client), headers=proof)
    assert spent.status_code == 200, spent.text
    again = await store_code(store, client, settings=settings)
    refused(await second_instance.post("/token", data=code_form(again, client), headers=proof))


async def test_two_proofs_a_private_key_and_unsigned_proofs_are_refused(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    key = DPoPKey.generate()
    url = endpoint_url(settings, "token")
    code = await store_code(store, client, settings=settings)
    data = code_form(code, client)
    two = [("dpop", key.proof("POST", url)), ("dpop", key.proof("POST", url))]
    refused(await http.post("/token", data=data, headers=two))
    private = {"DPoP": key.proof("POST", url, header={"jwk": dict(key.key.as_dict(private=True))})}
    refused(await http.post("/token", data=data, headers=private))
    for alg, secret in (("none", None), ("HS256", json.dumps(key.public_jwk).encode())):
        header = {"typ": "dpop+jwt", "alg": alg, "jwk": key.public_jwk}
        forged = key.compact(header, key.claims("POST", url), hmac_key=secret)
        refused(await http.post("/token", data=data, headers={"DPoP": forged}))


async def test_a_stolen_code_bound_by_dpop_jkt_is_useless_with_another_key(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    from auth_server.models import AuthorizationCodeRecord

    client = await add_client(store)
    victim = DPoPKey.generate()
    code = await store_code(store, client, settings=settings)
    key = records.code_key(code.code)
    record = AuthorizationCodeRecord.model_validate_json(await store.get(key) or "")
    await store.set(key, record.model_copy(update={"dpop_jkt": victim.jkt}).model_dump_json(), ttl=60)
    attacker = {"DPoP": DPoPKey.generate().proof("POST", endpoint_url(settings, "token"))}
    refused(await http.post("/token", data=code_form(code, client), headers=attacker), "invalid_grant")


async def test_a_stolen_refresh_token_of_a_public_client_is_useless_without_its_key(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    victim = DPoPKey.generate()
    url = endpoint_url(settings, "token")
    code = await store_code(store, client, settings=settings)
    issued = await http.post(
        "/token", data=code_form(code, client), headers={"DPoP": victim.proof("POST", url)}
    )
    stolen = issued.json()["refresh_token"]
    form = {"grant_type": "refresh_token", "refresh_token": stolen, **client.auth()}
    refused(
        await http.post("/token", data=form, headers={"DPoP": DPoPKey.generate().proof("POST", url)}),
        "invalid_grant",
    )
    refused(await http.post("/token", data=form), "invalid_grant")
    # The thief's attempts neither ended the grant nor used the token up.
    owner = await http.post("/token", data=form, headers={"DPoP": victim.proof("POST", url)})
    assert owner.status_code == 200, owner.text


async def test_an_invented_nonce_is_refused_with_a_real_one(
    make_http: HttpFactory, store: Store, configure: Any
) -> None:
    http = await make_http(dpop_nonce="required")
    settings = configure(dpop_nonce="required")
    client = await add_client(store)
    code = await store_code(store, client, settings=settings)
    key = DPoPKey.generate()
    invented = {"DPoP": key.proof("POST", endpoint_url(settings, "token"), nonce="A" * 32)}
    response = await http.post("/token", data=code_form(code, client), headers=invented)
    refused(response, "use_dpop_nonce")
    assert len(response.headers["dpop-nonce"]) == 32


async def test_valid_proofs_with_junk_grants_make_the_server_remember_at_most_the_rate_limit(
    make_http: HttpFactory, store: Store, configure: Any
) -> None:
    # A public client's id and a key of one's own are all a proof that passes takes, and a valid
    # proof is spent (its jti remembered) before the grant is looked at: the rate limit per address
    # is what bounds how many an anonymous caller makes the server keep.
    limit = 10
    http = await make_http(rate_limit_per_minute=limit)
    settings = configure(rate_limit_per_minute=limit)
    client = await add_client(store)
    attacker = DPoPKey.generate()
    before = await remembered_proofs(settings)
    answers = []
    for n in range(limit + 5):
        form = {"grant_type": "authorization_code", "code": f"junk-{n}", "client_id": client.client_id}
        form |= {"code_verifier": "v" * 43, "redirect_uri": "http://127.0.0.1:9/callback"}
        proof = {"DPoP": attacker.proof("POST", endpoint_url(settings, "token"))}
        answers.append(await http.post("/token", data=form, headers=proof))
    spent = [a for a in answers if a.status_code == 400]
    assert all(a.json()["error"] == "invalid_grant" for a in spent), [a.text for a in spent]
    assert {a.status_code for a in answers} == {400, 429}
    assert len(spent) <= limit
    if settings.redis_url is not None:  # on Redis, one key per spent proof and nothing more
        assert await remembered_proofs(settings) - before == len(spent)


async def remembered_proofs(settings: Settings) -> int:
    """How many spent proofs the deployment's Redis holds (0 with the memory store, whose set of
    spent proofs is in the server process)."""
    if settings.redis_url is None:
        return 0
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        pattern = settings.redis_key_prefix + records.dpop_proof_key("*")
        return len([key async for key in client.scan_iter(match=pattern)])
    finally:
        await client.aclose()
