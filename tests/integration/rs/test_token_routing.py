"""Which check each token gets in external mode (shared/validators/external.py), and what a refused
introspection credential means (shared/validators/introspection.py), against real HTTP providers
on 127.0.0.1: the test harness's authorization server, and one that publishes no keys.
tests/idp/test_validation_choice.py does the same end to end against oidc-provider.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from shared.settings import Settings, TokenValidation
from shared.validation import TokenRejected, ValidatorUnavailable
from shared.validators.discovery import ProviderMetadata
from shared.validators.external import TokenRouter, is_jwt
from shared.validators.introspection import CREDENTIAL_RETRY_SECONDS, NO_CREDENTIAL
from tests.integration.rs.harness import RS_CLIENT_ID, RS_CLIENT_SECRET, LocalServer, MiniAuthorizationServer

RESOURCE = "http://127.0.0.1:3232/mcp"
SCOPES = ["mcp:tools:read"]
DEFAULT_SECRET = str(Settings.model_fields["introspection_client_secret"].default)


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def provider() -> AsyncIterator[tuple[MiniAuthorizationServer, LocalServer]]:
    server = LocalServer.reserve()
    mini = MiniAuthorizationServer(server.url, RESOURCE)
    await server.start(mini.app())
    yield mini, server
    await server.stop()


@pytest.fixture
async def keyless() -> AsyncIterator[tuple[MiniAuthorizationServer, LocalServer]]:
    """The same provider, but its metadata names no jwks_uri (introspection only)."""
    server = LocalServer.reserve()
    mini = MiniAuthorizationServer(server.url, RESOURCE)

    async def metadata(_: Request) -> Response:
        return JSONResponse({"issuer": mini.issuer, "introspection_endpoint": mini.issuer + "/introspect"})

    app = Starlette(
        routes=[Route("/.well-known/oauth-authorization-server", metadata), Mount("/", mini.app())]
    )
    await server.start(app)
    yield mini, server
    await server.stop()


def router(
    server: LocalServer, choice: TokenValidation = "auto", *, secret: str = RS_CLIENT_SECRET, **values: Any
) -> TokenRouter:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        auth_mode="external",
        auth_server_url=server.url,
        mcp_public_url="http://127.0.0.1:3232",
        token_validation=choice,
        introspection_client_id=RS_CLIENT_ID,
        introspection_client_secret=secret,
        introspection_timeout=1.0,
        **values,
    )
    return TokenRouter.from_settings(settings, metadata=ProviderMetadata.from_settings(settings))


def test_a_jwt_is_a_compact_jws_and_nothing_else_is() -> None:
    mini = MiniAuthorizationServer("http://127.0.0.1:1", RESOURCE)
    assert is_jwt(mini.mint_jwt("alice", SCOPES))
    assert not is_jwt(mini.mint_opaque("alice", SCOPES))
    assert not is_jwt("a.b.c")  # three segments, but no JOSE header
    assert not is_jwt("eyJhbGciOiJSUzI1NiJ9.e30.sig.extra.more")  # five segments: a JWE, not a JWS


async def test_auto_checks_jwts_locally_and_introspects_the_rest(provider) -> None:  # type: ignore[no-untyped-def]
    mini, server = provider
    validator = router(server)
    assert (await validator.validate(mini.mint_jwt("alice", SCOPES))).subject == "alice"
    assert mini.introspection_calls == 0
    assert (await validator.validate(mini.mint_opaque("bob", SCOPES))).subject == "bob"
    assert mini.introspection_calls == 1
    forged = mini.mint_jwt("alice", SCOPES, key=MiniAuthorizationServer.new_key(mini.key.kid))
    with pytest.raises(TokenRejected) as rejected:
        await validator.validate(forged)
    assert rejected.value.reason == "bad_signature"
    assert mini.introspection_calls == 1, "a JWT that fails the local check gets no second opinion"
    await validator.aclose()


async def test_auto_introspects_jwts_of_a_provider_that_publishes_no_keys(keyless) -> None:  # type: ignore[no-untyped-def]
    mini, server = keyless
    validator = router(server)
    token = mini.mint_jwt("alice", SCOPES)
    mini.opaque[token] = {"active": True, **mini.claims("alice", SCOPES)}  # it can vouch for it
    assert (await validator.validate(token)).subject == "alice"
    assert mini.introspection_calls == 1
    assert mini.jwks_calls == 0
    await validator.aclose()


async def test_jwt_only_refuses_opaque_tokens_without_a_call(provider) -> None:  # type: ignore[no-untyped-def]
    mini, server = provider
    validator = router(server, "jwt")
    assert validator.introspection is None
    with pytest.raises(TokenRejected):
        await validator.validate(mini.mint_opaque("bob", SCOPES))
    assert mini.introspection_calls == 0
    await validator.aclose()


async def test_introspection_for_every_token_never_fetches_keys(provider) -> None:  # type: ignore[no-untyped-def]
    mini, server = provider
    validator = router(server, "introspection")
    token = mini.mint_jwt("alice", SCOPES)
    mini.opaque[token] = {"active": True, **mini.claims("alice", SCOPES)}
    assert (await validator.validate(token)).subject == "alice"
    assert (mini.introspection_calls, mini.jwks_calls) == (1, 0)
    mini.revoke(token)
    validator.introspection._cache.clear()  # type: ignore[union-attr]  # as after INTROSPECTION_CACHE_TTL
    with pytest.raises(TokenRejected):
        await validator.validate(token)  # revoked at the provider: seen, unlike a local check
    await validator.aclose()


async def test_without_an_introspection_credential_opaque_tokens_are_401_and_not_asked_about_again(
    provider,  # type: ignore[no-untyped-def]
) -> None:
    mini, server = provider
    validator = router(server, secret=DEFAULT_SECRET)
    assert validator.introspection is not None
    clock = Clock()
    validator.introspection._clock = clock  # type: ignore[attr-defined]
    assert await validator.introspection.credential_accepted() is False
    calls = mini.introspection_calls
    for _ in range(3):
        with pytest.raises(TokenRejected) as rejected:
            await validator.validate(mini.mint_opaque("bob", SCOPES))
        assert rejected.value.description == NO_CREDENTIAL
    assert mini.introspection_calls == calls, "refused again without asking"
    clock.now += CREDENTIAL_RETRY_SECONDS + 1
    with pytest.raises(TokenRejected):
        await validator.validate(mini.mint_opaque("bob", SCOPES))
    assert mini.introspection_calls == calls + 1, "asked once more after the pause"
    assert (await validator.validate(mini.mint_jwt("alice", SCOPES))).subject == "alice"
    await validator.aclose()


async def test_a_configured_credential_that_is_refused_is_an_outage_not_a_bad_token(
    provider,  # type: ignore[no-untyped-def]
) -> None:
    mini, server = provider
    validator = router(server, secret="a-configured-secret-that-is-wrong-0123456789")
    assert validator.introspection is not None
    assert await validator.introspection.credential_accepted() is False
    with pytest.raises(ValidatorUnavailable):
        await validator.validate(mini.mint_opaque("bob", SCOPES))
    right = router(server)
    assert right.introspection is not None
    assert await right.introspection.credential_accepted() is True
    await validator.aclose()
    await right.aclose()
