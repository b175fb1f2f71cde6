"""Attacks on DPoP at the MCP endpoint (RFC 9449 sections 4.3, 7 and 11): one per rule a proof,
or a DPoP-bound token, must pass.

Each test sends a real request to a real MCP server (uvicorn on 127.0.0.1) with a token bound to
the victim's key, and a proof that breaks exactly one rule: the request must get 401
with a DPoP challenge naming the error RFC 9449 gives (`invalid_dpop_proof`, `use_dpop_nonce`,
`invalid_token`), and the tool must not run. Every test runs against each way the server learns
about tokens: JWTs with `cnf.jkt` (third-party JWT mode), introspection answers with `cnf`
(external mode), and the project's own authorization server (internal mode, DPoP-bound tokens
from its token endpoint; see `bound_token`).
"""

from __future__ import annotations

import json
import time
import uuid
import warnings
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
import redis.asyncio as aioredis

from mcp_server.app import create_app
from shared.storage import records
from tests.fixtures.dpop_client import DPoPKey, ath, b64url, dpop_headers
from tests.fixtures.local_server import LocalServer
from tests.integration.rs.conftest import (
    FORGEABLE_KINDS,
    TOKEN_KINDS,
    Rs,
    StartRs,
    bearer,
    launch,
    modern_request,
    shut_down,
    start_rs,
)
from tests.integration.rs.test_dpop import bound_token, challenges

__all__ = ["start_rs"]  # a fixture (tests/integration/rs/conftest.py): a server of the test's own

ECHO = {"name": "echo", "arguments": {"message": "should not run"}}
MAX_AGE = 300  # DPOP_PROOF_MAX_AGE's default


@pytest.fixture(scope="module", params=TOKEN_KINDS)
async def rs(request: pytest.FixtureRequest) -> AsyncIterator[Rs]:
    shared = await launch(request.param)
    yield shared
    await shut_down([shared])


async def call(rs: Rs, headers: dict[str, str], body: dict[str, Any] | None = None) -> httpx2.Response:
    payload, routing = modern_request("tools/call", body or ECHO)
    return await rs.http.post("/mcp", json=payload, headers={**routing, **headers})


def assert_refused(response: httpx2.Response, error: str = "invalid_dpop_proof") -> None:
    assert response.status_code == 401, response.text
    found = challenges(response)
    assert "DPoP" in found, response.headers.get_list("www-authenticate")
    assert found["DPoP"]["error"] == error, found
    assert response.json()["error"] == error
    assert "should not run" not in response.text


@pytest.fixture
async def victim(rs: Rs) -> tuple[DPoPKey, str]:
    key = DPoPKey.generate()
    return key, await bound_token(rs, key, "alice")


async def test_the_honest_request_these_attacks_start_from_is_accepted(
    rs: Rs, victim: tuple[DPoPKey, str]
) -> None:
    key, token = victim
    response = await call(rs, dpop_headers(key, token, "POST", rs.mcp_url))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("rule", "proof"),
    [
        ("wrong htm", {"htm": "GET"}),
        ("htm in lower case", {"htm": "post"}),
        ("no htm", {"htm": None}),
        ("another path", {"htu_path": "/sse"}),
        ("a trailing slash", {"htu_path": "/mcp/"}),
        ("another host", {"htu": "https://evil.example/mcp"}),
        ("another port", {"htu_port": 1}),
        ("https instead of http", {"htu_scheme": "https"}),
        ("the token endpoint", {"htu_path": "/token"}),
        ("a query", {"htu_path": "/mcp?x=1"}),
        ("a fragment", {"htu_path": "/mcp#x"}),
        ("userinfo", {"htu_userinfo": "user@"}),
        ("no htu", {"htu": None}),
        ("stale iat", {"iat_offset": -(MAX_AGE + 5)}),
        ("future iat", {"iat_offset": MAX_AGE + 5}),
        ("iat as a string", {"iat": "now"}),
        ("no iat", {"iat": None}),
        ("no jti", {"jti": None}),
        ("an empty jti", {"jti": ""}),
        ("a jti of 10,000 characters", {"jti": "j" * 10_000}),
        ("ath of another token", {"ath_value": ath("another-token")}),
        ("no ath", {"ath_value": None}),
        ("typ JWT", {"header": {"typ": "JWT"}}),
        ("no typ", {"header": {"typ": None}}),
        ("critical header extensions", {"header": {"crit": ["kid"], "kid": "k"}}),
        ("no jwk", {"header": {"jwk": None}}),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
async def test_a_proof_that_breaks_one_rule_is_refused(
    rs: Rs, victim: tuple[DPoPKey, str], rule: str, proof: dict[str, Any]
) -> None:
    key, token = victim
    base = rs.url.split("://", 1)[1]
    proof = dict(proof)
    if "htu_path" in proof:
        proof["htu"] = rs.url + proof.pop("htu_path")
    if "htu_port" in proof:
        proof["htu"] = f"http://127.0.0.1:{proof.pop('htu_port')}/mcp"
    if "htu_scheme" in proof:
        proof["htu"] = f"{proof.pop('htu_scheme')}://{base}/mcp"
    if "htu_userinfo" in proof:
        proof["htu"] = f"http://{proof.pop('htu_userinfo')}{base}/mcp"
    if "iat_offset" in proof:
        proof["iat"] = int(time.time()) + proof.pop("iat_offset")
    assert_refused(await call(rs, dpop_headers(key, token, "POST", rs.mcp_url, **proof)))


@pytest.mark.parametrize("alg", ["ES256K", "RS256", "EdDSA", "ES384"])
async def test_a_proof_whose_alg_is_off_the_list_or_does_not_fit_its_key_is_refused(
    rs: Rs, victim: tuple[DPoPKey, str], alg: str
) -> None:
    key, token = victim  # a P-256 key: only ES256 fits it
    header = {"typ": "dpop+jwt", "alg": alg, "jwk": key.public_jwk}
    proof = key.compact(header, key.claims("POST", rs.mcp_url, token), hmac_key=b"any signature")
    assert_refused(await call(rs, {"authorization": f"DPoP {token}", "dpop": proof}))


async def test_a_replayed_proof_is_refused(rs: Rs, victim: tuple[DPoPKey, str]) -> None:
    key, token = victim
    headers = dpop_headers(key, token, "POST", rs.mcp_url)
    assert (await call(rs, headers)).status_code == 200
    assert_refused(await call(rs, headers))


async def test_a_proof_by_another_key_than_the_tokens_is_refused(rs: Rs, victim: tuple[DPoPKey, str]) -> None:
    _, token = victim  # the stolen token
    attacker = DPoPKey.generate()
    assert_refused(await call(rs, dpop_headers(attacker, token, "POST", rs.mcp_url)))


async def test_a_proof_naming_the_victims_key_but_signed_by_another_is_refused(
    rs: Rs, victim: tuple[DPoPKey, str]
) -> None:
    key, token = victim
    attacker = DPoPKey.generate()
    headers = dpop_headers(key, token, "POST", rs.mcp_url, sign_with=attacker)
    assert_refused(await call(rs, headers))


async def test_a_dpop_bound_token_sent_as_bearer_is_refused(rs: Rs, victim: tuple[DPoPKey, str]) -> None:
    _, token = victim
    response = await call(rs, bearer(token))
    assert response.status_code == 401
    found = challenges(response)
    assert found["Bearer"]["error"] == "invalid_token"
    assert found["DPoP"]["algs"].startswith("ES256")
    assert "should not run" not in response.text


async def test_a_bearer_token_sent_with_the_dpop_scheme_is_refused(rs: Rs) -> None:
    key = DPoPKey.generate()
    token = await rs.token("alice")  # not bound to any key
    assert_refused(await call(rs, dpop_headers(key, token, "POST", rs.mcp_url)), "invalid_token")


async def test_the_dpop_scheme_without_a_proof_is_refused(rs: Rs, victim: tuple[DPoPKey, str]) -> None:
    _, token = victim
    assert_refused(await call(rs, {"authorization": f"DPoP {token}"}))


async def test_two_proof_headers_are_refused(rs: Rs, victim: tuple[DPoPKey, str]) -> None:
    key, token = victim
    payload, routing = modern_request("tools/call", ECHO)
    headers = [
        *routing.items(),
        ("authorization", f"DPoP {token}"),
        ("dpop", key.proof("POST", rs.mcp_url, token=token)),
        ("dpop", key.proof("POST", rs.mcp_url, token=token)),
    ]
    response = await rs.http.post("/mcp", content=json.dumps(payload).encode(), headers=headers)
    assert_refused(response)


async def test_a_private_key_in_the_proof_header_is_refused(rs: Rs, victim: tuple[DPoPKey, str]) -> None:
    key, token = victim
    private = dict(key.key.as_dict(private=True))
    assert "d" in private
    assert_refused(await call(rs, dpop_headers(key, token, "POST", rs.mcp_url, header={"jwk": private})))


@pytest.mark.parametrize("alg", ["none", "HS256"])
async def test_an_unsigned_or_hmac_proof_is_refused(rs: Rs, victim: tuple[DPoPKey, str], alg: str) -> None:
    key, token = victim
    header = {"typ": "dpop+jwt", "alg": alg, "jwk": key.public_jwk}
    # HS256 "signed" with what an attacker knows: the public key itself.
    secret = None if alg == "none" else json.dumps(key.public_jwk).encode()
    proof = key.compact(header, key.claims("POST", rs.mcp_url, token), hmac_key=secret)
    assert_refused(await call(rs, {"authorization": f"DPoP {token}", "dpop": proof}))


@pytest.mark.parametrize("rs", FORGEABLE_KINDS, indirect=True)  # our AS binds no such key
async def test_an_rsa_key_under_2048_bits_is_refused(rs: Rs) -> None:
    from joserfc.jwk import RSAKey

    with warnings.catch_warnings():  # joserfc warns about the very key this test needs
        warnings.simplefilter("ignore")
        weak = DPoPKey(RSAKey.generate_key(1024, private=True, auto_kid=False), "RS256")
    token = await bound_token(rs, weak)
    assert_refused(await call(rs, dpop_headers(weak, token, "POST", rs.mcp_url)))


async def test_garbage_in_the_proof_header_is_refused_not_a_500(rs: Rs, victim: tuple[DPoPKey, str]) -> None:
    _, token = victim
    deep = b64url(b"[" * 5000) + "." + b64url(b"{}") + ".AA"
    for proof in ("not-a-jwt", "a.b.c", deep, "e30." * 3, "x" * 20_000):
        assert_refused(await call(rs, {"authorization": f"DPoP {token}", "dpop": proof}))


@pytest.mark.parametrize("rs", FORGEABLE_KINDS, indirect=True)  # our AS mints no such token
@pytest.mark.parametrize(
    "cnf", [{"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}, {"jkt": 7}, "jkt"]
)
async def test_a_token_bound_to_a_proof_this_server_cannot_check_is_refused_either_way(
    rs: Rs, cnf: Any
) -> None:
    key = DPoPKey.generate()
    token = await rs.token("alice", cnf=cnf)
    assert (await call(rs, bearer(token))).status_code == 401
    assert (await call(rs, dpop_headers(key, token, "POST", rs.mcp_url))).status_code == 401


async def test_a_proof_for_the_host_header_rather_than_the_published_url_is_refused(
    start_rs: StartRs,
) -> None:
    """Behind a proxy the URL a client calls is MCP_PUBLIC_URL, whatever Host the request carries:
    a proof made for the address the request really reached proves nothing about the public one."""
    public = "https://mcp.example.com"
    rs = await start_rs("jwt", mcp_public_url=public, allowed_hosts=["mcp.example.com"])
    key = DPoPKey.generate()
    token = await rs.token("alice", cnf={"jkt": key.jkt}, aud=public + "/mcp")
    local = dpop_headers(key, token, "POST", rs.url + "/mcp")
    assert_refused(await call(rs, {**local, "host": "mcp.example.com"}))
    honest = dpop_headers(key, token, "POST", public + "/mcp")
    assert (await call(rs, {**honest, "host": "mcp.example.com"})).status_code == 200


async def test_without_the_servers_nonce_a_proof_is_refused_with_a_fresh_one(start_rs: StartRs) -> None:
    rs = await start_rs("jwt", dpop_nonce="required")
    key = DPoPKey.generate()
    token = await bound_token(rs, key)
    response = await call(rs, dpop_headers(key, token, "POST", rs.mcp_url))
    assert_refused(response, "use_dpop_nonce")
    nonce = response.headers["dpop-nonce"]
    invented = b64url(b"\0" * 24)
    assert_refused(
        await call(rs, dpop_headers(key, token, "POST", rs.mcp_url, nonce=invented)), "use_dpop_nonce"
    )
    assert (await call(rs, dpop_headers(key, token, "POST", rs.mcp_url, nonce=nonce))).status_code == 200


async def test_a_proof_used_at_one_instance_is_refused_at_another_on_the_same_redis(redis_url: str) -> None:
    prefix = f"dpop-{uuid.uuid4().hex[:8]}:"
    first = await launch("jwt", redis_url=redis_url, redis_key_prefix=prefix)
    second = LocalServer.reserve()
    try:
        # Two instances of one deployment: the same settings (so the same public URL), one Redis.
        await second.start(create_app(first.settings))
        key = DPoPKey.generate()
        token = await bound_token(first, key)
        headers = dpop_headers(key, token, "POST", first.mcp_url)
        assert (await call(first, headers)).status_code == 200
        async with httpx2.AsyncClient(base_url=second.url, timeout=10) as other:
            payload, routing = modern_request("tools/call", ECHO)
            replayed = await other.post("/mcp", json=payload, headers={**routing, **headers})
            assert_refused(replayed)
            fresh = dpop_headers(key, token, "POST", first.mcp_url)
            assert (await other.post("/mcp", json=payload, headers={**routing, **fresh})).status_code == 200
    finally:
        await second.stop()
        await shut_down([first])


async def test_junk_proofs_with_a_stolen_token_make_the_server_store_nothing(redis_url: str) -> None:
    """What an anonymous caller can make us store: a proof is remembered only once the token it
    came with proved valid and bound to the proof's key, so an attacker's own valid proofs with a
    stolen (or invented) token leave no trace in Redis."""
    prefix = f"dpop-{uuid.uuid4().hex[:8]}:"
    rs = await launch("jwt", redis_url=redis_url, redis_key_prefix=prefix)
    try:
        victim_key = DPoPKey.generate()
        stolen = await bound_token(rs, victim_key)
        attacker = DPoPKey.generate()
        for token in [stolen] * 20 + [f"invented-{n}" for n in range(20)]:
            assert (await call(rs, dpop_headers(attacker, token, "POST", rs.mcp_url))).status_code == 401
        client = aioredis.Redis.from_url(redis_url)
        used_proofs = prefix + records.dpop_proof_key("*")
        try:
            assert [key async for key in client.scan_iter(match=used_proofs)] == []
            assert (await call(rs, dpop_headers(victim_key, stolen, "POST", rs.mcp_url))).status_code == 200
            assert len([key async for key in client.scan_iter(match=used_proofs)]) == 1
        finally:
            await client.aclose()
    finally:
        await shut_down([rs])
