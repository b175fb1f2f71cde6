"""Providers put the user and the scopes in different claims: TOKEN_SUBJECT_CLAIM and
TOKEN_SCOPE_CLAIM say where (Entra's `oid` and `scp` string, Okta's `scp` list), checked with
tokens signed by the provider's key and verified against its JWKS."""

from __future__ import annotations

import pytest

from shared.validation import TokenRejected
from shared.validators.jwt import JwtValidator
from tests.idp.conftest import World, settings_of

READ = ["mcp:tools:read", "notes:read"]


@pytest.mark.parametrize("scp", [READ, " ".join(READ)], ids=["list", "string"])
async def test_scopes_from_scp_and_the_user_from_oid(world: World, scp: object) -> None:
    validator = JwtValidator.from_settings(
        settings_of(world.jwt, token_scope_claim="scp", token_subject_claim="oid")
    )
    claims = world.idp.claims("pairwise-sub", world.jwt.mcp_url, None, scp=scp, oid="user-42")
    try:
        principal = await validator.validate(world.idp.sign(claims))
        assert principal.subject == "user-42"
        assert principal.scopes == frozenset(READ)
        without_oid = {name: value for name, value in claims.items() if name != "oid"}
        with pytest.raises(TokenRejected) as rejected:
            await validator.validate(world.idp.sign(without_oid))
        assert rejected.value.reason == "not_an_access_token"
    finally:
        await validator.aclose()


async def test_by_default_scope_is_read_and_scp_is_the_fallback(world: World) -> None:
    validator = JwtValidator.from_settings(settings_of(world.jwt))
    try:
        with_scope = world.idp.claims("alice", world.jwt.mcp_url, "notes:read")
        assert (await validator.validate(world.idp.sign(with_scope))).scopes == {"notes:read"}
        with_scp = world.idp.claims("alice", world.jwt.mcp_url, None, scp=READ)
        assert (await validator.validate(world.idp.sign(with_scp))).scopes == frozenset(READ)
    finally:
        await validator.aclose()
