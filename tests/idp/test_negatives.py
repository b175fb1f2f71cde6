"""Every token the MCP server must refuse, each a 401 `invalid_token` (RS-30..RS-33, JW-03, RS-35).

Each token is sent to the running server (401, `error="invalid_token"`, the token never echoed)
and also given to the same validator built in-process from the same settings, to check that it
was refused for the reason the test is named after (the HTTP answer says little, on purpose).

JWT mode first. Forged tokens are signed with the provider's *real* key (the test generated it)
wherever possible, so each fails for exactly the one reason its name says: another issuer, an
expired token, an `alg` or `typ` that is not allowed. The wrong-audience token and the ID token
are genuine, issued by the provider itself. Introspection mode: a revoked opaque token, one for
another resource, and a JWT the provider cannot introspect.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from shared.validation import FailureReason, TokenRejected, TokenValidator
from shared.validators.introspection import IntrospectionValidator
from shared.validators.jwt import JwtValidator
from tests.e2e.oauth_flow import initialize, parse_challenge, revoke
from tests.e2e.servers import Deployment
from tests.idp.conftest import (
    OTHER_JWT_RESOURCE,
    OTHER_OPAQUE_RESOURCE,
    RS_BASIC_CLIENT_ID,
    World,
    settings_of,
)
from tests.idp.flows import MCP_SCOPE, provider_tokens
from tests.idp.provider import new_signing_key


@pytest.fixture
async def jwt_validator(world: World) -> AsyncIterator[JwtValidator]:
    validator = JwtValidator.from_settings(settings_of(world.jwt))
    yield validator
    await validator.aclose()


@pytest.fixture
async def introspection_validator(world: World) -> AsyncIterator[IntrospectionValidator]:
    """The introspection deployment's settings, but client_secret_basic with the other client:
    both RFC 6749 client authentication methods meet the real provider."""
    settings = settings_of(
        world.introspection,
        introspection_client_id=RS_BASIC_CLIENT_ID,
        introspection_client_secret=world.rs_basic_secret,
        introspection_auth_method="client_secret_basic",
    )
    validator = IntrospectionValidator.from_settings(settings)
    yield validator
    await validator.aclose()


async def assert_refused(
    deployment: Deployment, token: str, validator: TokenValidator, reason: FailureReason
) -> None:
    response = initialize(deployment.mcp_url, token)
    assert response.status_code == 401, f"{response.status_code}: {response.text[:300]}"
    challenge = parse_challenge(response.headers["www-authenticate"])
    assert challenge.get("error") == "invalid_token", challenge
    assert token not in response.text
    with pytest.raises(TokenRejected) as rejected:
        await validator.validate(token)
    assert rejected.value.reason == reason, rejected.value.description


def good_claims(world: World, **overrides: object) -> dict[str, object]:
    return world.idp.claims("alice", world.jwt.mcp_url, MCP_SCOPE, **overrides)


async def test_a_token_forged_with_the_providers_key_but_correct_is_accepted(
    world: World, jwt_validator: JwtValidator
) -> None:
    """The control: the forging itself is sound, so each negative below fails for its one reason."""
    token = world.idp.sign(good_claims(world))
    assert initialize(world.jwt.mcp_url, token).status_code == 200
    principal = await jwt_validator.validate(token)
    assert (principal.subject, principal.issuer) == ("alice", world.idp.issuer)


async def test_another_issuers_token_is_refused_even_when_signed_with_the_providers_key(
    world: World, jwt_validator: JwtValidator
) -> None:
    token = world.idp.sign(good_claims(world, iss="http://127.0.0.1:1/another-issuer"))
    await assert_refused(world.jwt, token, jwt_validator, "wrong_issuer")


async def test_a_token_from_another_provider_with_its_own_key_is_refused(
    world: World, jwt_validator: JwtValidator
) -> None:
    stranger = new_signing_key("another-providers-key")
    token = world.idp.sign(good_claims(world, iss="https://idp.example"), key=stranger)
    await assert_refused(world.jwt, token, jwt_validator, "bad_signature")


async def test_a_genuine_token_for_another_resource_is_refused(
    world: World, jwt_validator: JwtValidator
) -> None:
    _, _, tokens = provider_tokens(world.idp, OTHER_JWT_RESOURCE)
    await assert_refused(world.jwt, tokens.access_token, jwt_validator, "wrong_audience")


async def test_an_expired_token_is_refused(world: World, jwt_validator: JwtValidator) -> None:
    now = int(time.time())
    token = world.idp.sign(good_claims(world, iat=now - 7200, exp=now - 3600))
    await assert_refused(world.jwt, token, jwt_validator, "expired")


async def test_a_token_not_valid_yet_is_refused(world: World, jwt_validator: JwtValidator) -> None:
    token = world.idp.sign(good_claims(world, nbf=int(time.time()) + 3600))
    await assert_refused(world.jwt, token, jwt_validator, "expired")


async def test_an_unknown_kid_is_refused_and_refetches_the_jwks_at_most_once(
    world: World, jwt_validator: JwtValidator
) -> None:
    rotated_away = new_signing_key("rotated-away")
    token = world.idp.sign(good_claims(world), key=rotated_away)
    before = world.idp.stats()["jwks"]
    for _ in range(3):
        await assert_refused(world.jwt, token, jwt_validator, "bad_signature")
    # Two validators (the server's, this test's) may each refetch once; three tries, not six.
    assert world.idp.stats()["jwks"] - before <= 2, "an unknown kid must not make us hammer the JWKS"


async def test_alg_none_is_refused(world: World, jwt_validator: JwtValidator) -> None:
    header = {"alg": "none", "typ": "at+jwt", "kid": world.idp.key.kid}
    token = world.idp.handmade(header, good_claims(world), None)
    await assert_refused(world.jwt, token, jwt_validator, "bad_signature")


async def test_hs256_signed_with_the_providers_public_key_is_refused(
    world: World, jwt_validator: JwtValidator
) -> None:
    header = {"alg": "HS256", "typ": "at+jwt", "kid": world.idp.key.kid}
    token = world.idp.handmade(header, good_claims(world), world.idp.public_key_pem())
    await assert_refused(world.jwt, token, jwt_validator, "bad_signature")


async def test_a_flipped_signature_byte_is_refused(world: World, jwt_validator: JwtValidator) -> None:
    head, payload, signature = world.idp.sign(good_claims(world)).split(".")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    await assert_refused(world.jwt, f"{head}.{payload}.{flipped}", jwt_validator, "bad_signature")


@pytest.mark.parametrize("typ", ["JWT", "id_token+jwt"])
async def test_a_jwt_that_is_not_an_access_token_by_typ_is_refused(
    world: World, jwt_validator: JwtValidator, typ: str
) -> None:
    token = world.idp.sign(good_claims(world), header={"typ": typ})
    await assert_refused(world.jwt, token, jwt_validator, "not_an_access_token")


async def test_the_providers_own_id_token_is_not_a_bearer_token(
    world: World, jwt_validator: JwtValidator
) -> None:
    _, _, tokens = provider_tokens(world.idp, world.jwt.mcp_url, scope="openid " + MCP_SCOPE)
    id_token = tokens.raw.get("id_token")
    assert isinstance(id_token, str)
    assert initialize(world.jwt.mcp_url, tokens.access_token).status_code == 200
    await assert_refused(world.jwt, id_token, jwt_validator, "not_an_access_token")


async def test_typ_jwt_is_accepted_only_when_configured_for_providers_that_send_it(world: World) -> None:
    token = world.idp.sign(good_claims(world), header={"typ": "JWT"})
    relaxed = JwtValidator.from_settings(settings_of(world.jwt, jwt_token_types=["at+jwt", "JWT"]))
    try:
        assert (await relaxed.validate(token)).subject == "alice"
    finally:
        await relaxed.aclose()


# --- introspection mode ------------------------------------------------------------------------------
async def test_an_opaque_token_is_accepted_with_client_secret_basic_too(
    world: World, introspection_validator: IntrospectionValidator
) -> None:
    _, _, tokens = provider_tokens(world.idp, world.introspection.mcp_url)
    principal = await introspection_validator.validate(tokens.access_token)
    assert (principal.subject, principal.issuer) == ("alice", world.idp.issuer)
    assert principal.audience == (world.introspection.mcp_url,)


async def test_a_revoked_opaque_token_is_refused_on_the_next_request(
    world: World, introspection_validator: IntrospectionValidator
) -> None:
    discovery, client, tokens = provider_tokens(world.idp, world.introspection.mcp_url)
    assert initialize(world.introspection.mcp_url, tokens.access_token).status_code == 200
    revoke(discovery, client.client_id, tokens.access_token, "access_token")
    await assert_refused(world.introspection, tokens.access_token, introspection_validator, "unknown")


async def test_an_opaque_token_for_another_resource_is_refused(
    world: World, introspection_validator: IntrospectionValidator
) -> None:
    _, _, tokens = provider_tokens(world.idp, OTHER_OPAQUE_RESOURCE)
    await assert_refused(world.introspection, tokens.access_token, introspection_validator, "wrong_audience")


async def test_a_jwt_the_provider_cannot_introspect_is_refused_not_an_error(
    world: World, introspection_validator: IntrospectionValidator
) -> None:
    _, _, tokens = provider_tokens(world.idp, world.jwt.mcp_url)
    await assert_refused(world.introspection, tokens.access_token, introspection_validator, "unknown")


async def test_an_unknown_opaque_token_is_refused(
    world: World, introspection_validator: IntrospectionValidator
) -> None:
    await assert_refused(
        world.introspection, "not-a-token-the-provider-issued", introspection_validator, "unknown"
    )
