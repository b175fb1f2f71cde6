"""The validators on their own, against real HTTP endpoints on 127.0.0.1.

Introspection: the cache bounds (exp, max TTL, negative TTL, size), digests as keys, one call
for concurrent requests, and every way the authorization server can fail (down, 500, garbage,
slow, refusing our credentials) -> ValidatorUnavailable quickly. Also against the project's own
authorization server's /introspect. JWT: every RFC 9068 / RFC 8725 rejection, and JWKS refresh
on key rotation with a rate limit. API keys and the chain's "first that recognises" rule.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from joserfc.jwk import RSAKey

from shared.validation import Principal, TokenRejected, ValidatorUnavailable
from shared.validators.api_keys import ApiKeyValidator, api_key_digest
from shared.validators.chain import ChainValidator
from shared.validators.introspection import IntrospectionValidator
from shared.validators.jwt import JwtValidator
from tests.integration.rs.harness import RS_CLIENT_ID, RS_CLIENT_SECRET, LocalServer, MiniAuthorizationServer

RESOURCE = "http://127.0.0.1:3232/mcp"
SCOPES = ["mcp:tools:read", "notes:read"]


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def authority() -> AsyncIterator[tuple[MiniAuthorizationServer, LocalServer]]:
    server = LocalServer.reserve()
    mini = MiniAuthorizationServer(server.url, RESOURCE)
    await server.start(mini.app())
    yield mini, server
    await server.stop()


def introspection(
    server: LocalServer, mini: MiniAuthorizationServer, **overrides: Any
) -> IntrospectionValidator:
    values: dict[str, Any] = {
        "endpoint": server.url + "/introspect",
        "client_id": RS_CLIENT_ID,
        "client_secret": RS_CLIENT_SECRET,
        "resource": RESOURCE,
        "issuer": mini.issuer,
        "cache_ttl": 30,
        "negative_ttl": 5,
        "cache_size": 100,
        "timeout": 0.5,
    }
    values.update(overrides)
    return IntrospectionValidator(**values)


# --- introspection ----------------------------------------------------------------------------------
async def test_an_active_token_becomes_a_principal_and_the_call_uses_client_secret_basic(authority) -> None:  # type: ignore[no-untyped-def]
    mini, server = authority
    validator = introspection(server, mini)
    principal = await validator.validate(mini.mint_opaque("alice", SCOPES, client_id="app"))
    assert principal.subject == "alice"
    assert principal.client_id == "app"
    assert principal.scopes == frozenset(SCOPES)
    assert principal.audience == (RESOURCE,)
    assert principal.issuer == mini.issuer
    assert mini.last_introspection_auth is not None
    assert mini.last_introspection_auth.startswith("Basic ")
    await validator.aclose()


async def test_active_results_are_cached_no_longer_than_the_max_ttl(authority) -> None:  # type: ignore[no-untyped-def]
    mini, server = authority
    clock = FakeClock()
    validator = introspection(server, mini, cache_ttl=30, clock=clock)
    token = mini.mint_opaque("alice", SCOPES)
    await validator.validate(token)
    await validator.validate(token)
    assert mini.introspection_calls == 1
    mini.revoke(token)
    clock.now += 29
    await validator.validate(token)  # still cached: the documented revocation lag
    clock.now += 2
    with pytest.raises(TokenRejected):
        await validator.validate(token)
    assert mini.introspection_calls == 2
    await validator.aclose()


async def test_active_results_are_cached_no_longer_than_the_tokens_exp(authority) -> None:  # type: ignore[no-untyped-def]
    mini, server = authority
    clock = FakeClock()
    validator = introspection(server, mini, cache_ttl=300, clock=clock)
    token = mini.mint_opaque("alice", SCOPES, exp=int(clock.now) + 10)
    await validator.validate(token)
    clock.now += 11
    with pytest.raises(TokenRejected) as rejected:
        await validator.validate(token)
    assert rejected.value.reason == "expired"
    assert mini.introspection_calls == 2
    await validator.aclose()


async def test_inactive_results_are_cached_briefly(authority) -> None:  # type: ignore[no-untyped-def]
    mini, server = authority
    clock = FakeClock()
    validator = introspection(server, mini, negative_ttl=5, clock=clock)
    for _ in range(3):
        with pytest.raises(TokenRejected):
            await validator.validate("never-issued")
    assert mini.introspection_calls == 1
    clock.now += 6
    with pytest.raises(TokenRejected):
        await validator.validate("never-issued")
    assert mini.introspection_calls == 2
    await validator.aclose()


async def test_the_cache_is_a_bounded_lru_keyed_by_digests(authority) -> None:  # type: ignore[no-untyped-def]
    mini, server = authority
    validator = introspection(server, mini, cache_size=3)
    tokens = [mini.mint_opaque(f"user{i}", SCOPES) for i in range(5)]
    for token in tokens:
        await validator.validate(token)
    assert validator.cache_len == 3
    keys = list(validator._cache)
    assert all(isinstance(key, bytes) and len(key) == 32 for key in keys)
    assert not any(token.encode() in key for key in keys for token in tokens)
    await validator.validate(tokens[0])  # evicted: asks again
    assert mini.introspection_calls == 6
    await validator.validate(tokens[4])  # recent: cached
    assert mini.introspection_calls == 6
    await validator.aclose()


async def test_concurrent_requests_with_one_new_token_share_one_introspection(authority) -> None:  # type: ignore[no-untyped-def]
    mini, server = authority
    mini.mode, mini.slow_seconds = "slow", 0.2
    validator = introspection(server, mini, timeout=3)
    token = mini.mint_opaque("alice", SCOPES)
    results = await asyncio.gather(*(validator.validate(token) for _ in range(10)))
    assert {principal.subject for principal in results} == {"alice"}
    assert mini.introspection_calls == 1
    await validator.aclose()


@pytest.mark.parametrize("failure", ["down", "error", "garbage", "slow", "wrong-secret"])
async def test_an_authorization_server_that_cannot_answer_makes_the_validator_unavailable_fast(
    authority,  # type: ignore[no-untyped-def]
    failure: str,
) -> None:
    mini, server = authority
    token = mini.mint_opaque("alice", SCOPES)
    overrides: dict[str, Any] = {"timeout": 0.5}
    if failure == "down":
        await server.stop()
    elif failure == "wrong-secret":
        overrides["client_secret"] = "not-the-secret"
    else:
        mini.mode = failure  # type: ignore[assignment]
    validator = introspection(server, mini, **overrides)
    # "slow" answers after 10 s, and then validly: only the 0.5 s timeout can make this raise.
    with pytest.raises(ValidatorUnavailable) as unavailable:
        await validator.validate(token)
    assert unavailable.value.retry_after >= 1
    assert validator.cache_len == 0  # failures are never cached
    await validator.aclose()


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"aud": "https://other.example/mcp"}, "wrong_audience"),
        ({"aud": None}, "wrong_audience"),
        ({"iss": "https://evil.example"}, "wrong_issuer"),
        ({"token_type": "refresh_token"}, "not_an_access_token"),
    ],
)
async def test_introspected_tokens_must_be_for_this_resource_from_the_trusted_issuer(
    authority,  # type: ignore[no-untyped-def]
    claims: dict[str, Any],
    reason: str,
) -> None:
    mini, server = authority
    token_type = claims.pop("token_type", None)
    token = mini.mint_opaque("alice", SCOPES, **claims)
    if token_type:
        mini.opaque[token]["token_type"] = token_type
    validator = introspection(server, mini)
    with pytest.raises(TokenRejected) as rejected:
        await validator.validate(token)
    assert rejected.value.reason == reason
    await validator.aclose()


async def test_introspection_against_the_projects_own_authorization_server() -> None:
    """The real /introspect: a token from the real token endpoint, then revoked at /revoke."""
    import httpx2

    from shared.storage.memory import MemoryStore
    from tests.integration.auth import helpers

    store = MemoryStore()
    server = LocalServer.reserve()
    settings = helpers.make_settings()
    await server.start(helpers.build_app(settings, store))
    try:
        client = await helpers.add_client(store)
        async with httpx2.AsyncClient(base_url=server.url) as http:
            tokens = await helpers.tokens_for(http, store, settings, client, scope=("notes:read",))
            validator = IntrospectionValidator(
                endpoint=server.url + "/introspect",
                client_id=helpers.RS_CLIENT_ID,
                client_secret=helpers.RS_CLIENT_SECRET,
                resource=helpers.RESOURCE,
                issuer=settings.issuer,
                cache_ttl=0,
            )
            principal = await validator.validate(tokens["access_token"])
            assert principal.subject == "demo"
            assert principal.scopes == {"notes:read"}
            assert principal.audience == (helpers.RESOURCE,)
            with pytest.raises(TokenRejected) as refresh_as_bearer:
                await validator.validate(tokens["refresh_token"])
            assert refresh_as_bearer.value.reason == "not_an_access_token"
            revoked = await http.post("/revoke", data={"token": tokens["access_token"], **client.auth()})
            assert revoked.status_code == 200
            with pytest.raises(TokenRejected):
                await validator.validate(tokens["access_token"])
            await validator.aclose()
    finally:
        await server.stop()
        await store.close()


# --- JWT ---------------------------------------------------------------------------------------------
def jwt_validator(mini: MiniAuthorizationServer, server: LocalServer, **overrides: Any) -> JwtValidator:
    values: dict[str, Any] = {
        "issuer": mini.issuer,
        "resource": RESOURCE,
        "metadata_url": server.url + "/.well-known/oauth-authorization-server",
        "refresh_interval": 30,
        "timeout": 0.5,
    }
    values.update(overrides)
    return JwtValidator(**values)


async def test_a_valid_at_jwt_becomes_a_principal_with_keys_from_the_metadata_jwks_uri(authority) -> None:  # type: ignore[no-untyped-def]
    mini, server = authority
    validator = jwt_validator(mini, server)
    principal = await validator.validate(mini.mint_jwt("alice", SCOPES, client_id="app"))
    assert principal == Principal(
        subject="alice",
        client_id="app",
        scopes=frozenset(SCOPES),
        audience=(RESOURCE,),
        issuer=mini.issuer,
        expires_at=principal.expires_at,
        claims=principal.claims,
    )
    await validator.validate(mini.mint_jwt("bob", SCOPES))
    assert mini.jwks_calls == 1  # cached
    await validator.aclose()


def _public_pem(key: RSAKey) -> bytes:
    return key.as_pem(private=False)


@pytest.mark.parametrize(
    "case",
    [
        "wrong-issuer",
        "wrong-audience",
        "no-audience",
        "expired",
        "not-yet-valid",
        "unknown-kid",
        "foreign-key-same-kid",
        "alg-none",
        "hs256-with-public-key",
        "typ-jwt",
        "no-typ",
        "no-exp",
        "flipped-signature",
    ],
)
async def test_bad_jwts_are_rejected(authority, case: str) -> None:  # type: ignore[no-untyped-def]
    mini, server = authority
    now = int(time.time())
    if case == "wrong-issuer":
        token = mini.mint_jwt("alice", SCOPES, iss="https://evil.example")
    elif case == "wrong-audience":
        token = mini.mint_jwt("alice", SCOPES, aud="https://other.example/mcp")
    elif case == "no-audience":
        token = mini.mint_jwt("alice", SCOPES, aud=None)
    elif case == "expired":
        token = mini.mint_jwt("alice", SCOPES, exp=now - 120)
    elif case == "not-yet-valid":
        token = mini.mint_jwt("alice", SCOPES, nbf=now + 600)
    elif case == "unknown-kid":
        token = mini.mint_jwt("alice", SCOPES, key=MiniAuthorizationServer.new_key("key-unknown"))
    elif case == "foreign-key-same-kid":
        token = mini.mint_jwt("alice", SCOPES, key=MiniAuthorizationServer.new_key("key-1"))
    elif case == "alg-none":
        token = mini.unsigned_jwt("alice", SCOPES, {"alg": "none", "typ": "at+jwt", "kid": "key-1"}, None)
    elif case == "hs256-with-public-key":
        header = {"alg": "HS256", "typ": "at+jwt", "kid": "key-1"}
        token = mini.unsigned_jwt("alice", SCOPES, header, _public_pem(mini.key))
    elif case == "typ-jwt":
        token = mini.mint_jwt("alice", SCOPES, header={"typ": "JWT"})
    elif case == "no-typ":
        header = {"alg": "RS256", "kid": "key-1"}
        from joserfc import jwt

        token = jwt.encode(header, mini.claims("alice", SCOPES), mini.key)
    elif case == "no-exp":
        token = mini.mint_jwt("alice", SCOPES, exp=None)
    else:
        head, payload, signature = mini.mint_jwt("alice", SCOPES).split(".")
        token = ".".join([head, payload, ("A" if signature[0] != "A" else "B") + signature[1:]])
    validator = jwt_validator(mini, server)
    with pytest.raises(TokenRejected) as rejected:
        await validator.validate(token)
    assert rejected.value.reason != "malformed"  # a JWT is recognised: no fall-through to introspection
    await validator.aclose()


async def test_a_small_clock_skew_is_tolerated(authority) -> None:  # type: ignore[no-untyped-def]
    mini, server = authority
    now = int(time.time())
    validator = jwt_validator(mini, server, leeway=30)
    await validator.validate(mini.mint_jwt("alice", SCOPES, nbf=now + 10, exp=now - 10))
    await validator.aclose()


async def test_a_rotated_key_is_fetched_once_and_unknown_kids_are_rate_limited(authority) -> None:  # type: ignore[no-untyped-def]
    mini, server = authority
    validator = jwt_validator(mini, server, refresh_interval=30)
    await validator.validate(mini.mint_jwt("alice", SCOPES))
    assert mini.jwks_calls == 1
    rotated = MiniAuthorizationServer.new_key("key-2")
    mini.published = [rotated, mini.key]
    # the first unknown kid refreshes once (a refresh right after start-up is rate-limited, so wait)
    validator._last_fetch_attempt -= 31
    await validator.validate(mini.mint_jwt("alice", SCOPES, key=rotated))
    assert mini.jwks_calls == 2
    for index in range(5):
        with pytest.raises(TokenRejected):
            await validator.validate(
                mini.mint_jwt("alice", SCOPES, key=MiniAuthorizationServer.new_key(f"junk-{index}"))
            )
    assert mini.jwks_calls == 2  # garbage kids cannot make us hammer the JWKS endpoint
    await validator.aclose()


async def test_an_unreachable_jwks_makes_the_jwt_validator_unavailable(authority) -> None:  # type: ignore[no-untyped-def]
    mini, server = authority
    token = mini.mint_jwt("alice", SCOPES)
    await server.stop()
    validator = jwt_validator(mini, server)
    with pytest.raises(ValidatorUnavailable):
        await validator.validate(token)
    await validator.aclose()


def test_symmetric_algorithms_cannot_even_be_configured() -> None:
    for algorithms in (["HS256"], ["none"], ["RS256", "HS512"]):
        with pytest.raises(ValueError, match="asymmetric"):
            JwtValidator(
                issuer="https://as", resource=RESOURCE, jwks_uri="https://as/jwks", algorithms=algorithms
            )


async def test_opaque_tokens_are_not_recognised_by_the_jwt_validator() -> None:
    validator = JwtValidator(issuer="https://as", resource=RESOURCE, jwks_uri="http://127.0.0.1:9/jwks")
    for token in ("opaque-token", "a.b", "not.json.here", "x" * 20_000):
        with pytest.raises(TokenRejected) as rejected:
            await validator.validate(token)
        assert rejected.value.reason == "malformed"


# --- API keys and the chain ----------------------------------------------------------------------------
async def test_api_keys_are_looked_up_by_digest_and_anything_else_is_not_theirs() -> None:
    validator = ApiKeyValidator(
        [{"sha256": api_key_digest("k-1"), "subject": "svc", "scopes": "mcp:tools:read notes:read"}],
        resource=RESOURCE,
    )
    principal = await validator.validate("k-1")
    assert principal.subject == "api-key:svc"
    assert principal.scopes == {"mcp:tools:read", "notes:read"}
    assert principal.audience == (RESOURCE,)
    with pytest.raises(TokenRejected) as rejected:
        await validator.validate("k-2")
    assert rejected.value.reason == "malformed"
    with pytest.raises(ValueError, match="sha256"):
        ApiKeyValidator([{"sha256": "k-1", "subject": "svc"}], resource=RESOURCE)
    with pytest.raises(ValueError, match="subject"):
        ApiKeyValidator([{"sha256": api_key_digest("k"), "subject": ""}], resource=RESOURCE)


async def test_the_chain_asks_the_next_validator_only_when_a_token_is_not_recognised(authority) -> None:  # type: ignore[no-untyped-def]
    mini, server = authority
    keys = ApiKeyValidator(
        [{"sha256": api_key_digest("k-1"), "subject": "svc", "scopes": []}], resource=RESOURCE
    )
    jwts = jwt_validator(mini, server)
    opaque = introspection(server, mini)
    chain = ChainValidator([keys, jwts, opaque])
    assert (await chain.validate("k-1")).subject == "api-key:svc"
    assert (await chain.validate(mini.mint_jwt("alice", SCOPES))).subject == "alice"
    assert (await chain.validate(mini.mint_opaque("bob", SCOPES))).subject == "bob"
    calls = mini.introspection_calls
    with pytest.raises(TokenRejected) as rejected:
        await chain.validate(mini.mint_jwt("alice", SCOPES, iss="https://evil.example"))
    assert rejected.value.reason == "wrong_issuer"
    assert mini.introspection_calls == calls  # a rejected JWT never falls through
    await chain.aclose()
