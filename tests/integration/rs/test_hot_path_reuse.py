"""What the resource server's hot path remembers, and what it still checks on every request.

- `JwtValidator` checks a token's signature once (by the token's digest and the key object that
  verified it), but the header, the key lookup and every claim (iss, aud, exp, nbf) on every call:
  an expired token, a withdrawn key or a key replaced under the same `kid` still reject.
- `BearerAuth` builds the SDK's user object once per Principal object: each request still gets
  the user of its own principal, and the memo stays bounded.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from starlette.types import Message, Receive, Scope, Send

from mcp_server.protection import middleware as middleware_module
from mcp_server.protection.middleware import PRINCIPAL_STATE_KEY, BearerAuth
from shared.validation import Principal, TokenRejected
from shared.validators import jwt as jwt_module
from shared.validators.jwt import JwtValidator
from tests.integration.rs.harness import LocalServer, MiniAuthorizationServer

RESOURCE = "http://127.0.0.1:3232/mcp"
SCOPES = ["mcp:tools:read"]


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


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every signature check the JWT validator makes."""
    seen: list[str] = []
    real = jwt_module.jwt.decode

    def counting(token: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(token)
        return real(token, *args, **kwargs)

    monkeypatch.setattr(jwt_module.jwt, "decode", counting)
    return seen


async def test_a_signature_is_checked_once_and_the_claims_every_time(authority, decodes) -> None:  # type: ignore[no-untyped-def]
    mini, server = authority
    clock = FakeClock()
    validator = jwt_validator(mini, server, clock=clock, leeway=0)
    token = mini.mint_jwt("alice", SCOPES, exp=int(clock.now) + 60)
    first = await validator.validate(token)
    again = await validator.validate(token)
    assert (first.subject, again.subject) == ("alice", "alice")
    assert decodes == [token]
    other = mini.mint_jwt("bob", SCOPES)
    assert (await validator.validate(other)).subject == "bob"
    assert decodes == [token, other]
    # A forged variant of the remembered token is different bytes: checked, and refused.
    head, payload, signature = token.split(".")
    forged = f"{head}.{payload}.{signature[:-4]}{'AAAA' if signature[-4:] != 'AAAA' else 'BBBB'}"
    with pytest.raises(TokenRejected) as rejected:
        await validator.validate(forged)
    assert rejected.value.reason == "bad_signature"
    clock.now += 61
    with pytest.raises(TokenRejected) as expired:
        await validator.validate(token)
    assert expired.value.reason == "expired"
    await validator.aclose()


async def test_a_withdrawn_key_rejects_tokens_it_verified_before(authority) -> None:  # type: ignore[no-untyped-def]
    mini, server = authority
    validator = jwt_validator(mini, server, cache_ttl=0.0, refresh_interval=0.0)
    token = mini.mint_jwt("alice", SCOPES)
    await validator.validate(token)
    await validator.validate(token)
    mini.published = [MiniAuthorizationServer.new_key("key-2")]
    with pytest.raises(TokenRejected) as rejected:
        await validator.validate(token)
    assert rejected.value.reason == "bad_signature"
    await validator.aclose()


async def test_a_different_key_under_the_same_kid_verifies_again(authority) -> None:  # type: ignore[no-untyped-def]
    mini, server = authority
    validator = jwt_validator(mini, server, cache_ttl=0.0, refresh_interval=0.0)
    token = mini.mint_jwt("alice", SCOPES)
    await validator.validate(token)
    mini.published = [MiniAuthorizationServer.new_key(mini.key.kid or "key-1")]
    with pytest.raises(TokenRejected) as rejected:
        await validator.validate(token)
    assert rejected.value.reason == "bad_signature"
    await validator.aclose()


async def test_the_signature_memo_is_bounded(authority, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    mini, server = authority
    monkeypatch.setattr(jwt_module, "_VERIFIED_MAX", 2)
    validator = jwt_validator(mini, server)
    for name in ("a", "b", "c", "d"):
        assert (await validator.validate(mini.mint_jwt(name, SCOPES))).subject == name
    assert len(validator._verified) <= 2
    await validator.aclose()


# --- BearerAuth --------------------------------------------------------------------------------------
class FixedPrincipals:
    """A validator that hands out one Principal object per token, as the introspection cache does."""

    def __init__(self, principals: dict[str, Principal]) -> None:
        self.principals = principals

    async def validate(self, token: str) -> Principal:
        try:
            return self.principals[token]
        except KeyError:
            raise TokenRejected("unknown") from None


def principal(subject: str, scopes: frozenset[str]) -> Principal:
    return Principal(
        subject=subject,
        client_id=f"client-of-{subject}",
        scopes=scopes,
        audience=(RESOURCE,),
        issuer="http://127.0.0.1:3001",
        expires_at=int(time.time()) + 600,
    )


async def test_every_request_gets_the_user_of_its_own_principal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(middleware_module, "_USERS_MAX", 2)
    principals = {
        "token-alice": principal("alice", frozenset({"mcp:tools:read", "notes:read"})),
        "token-bob": principal("bob", frozenset({"mcp:tools:read"})),
        "token-carol": principal("carol", frozenset({"notes:read"})),
        "token-dana": principal("dana", frozenset({"mcp:tools:read", "notes:write"})),
    }
    seen: list[tuple[AuthenticatedUser, Principal]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((scope["user"], scope["state"][PRINCIPAL_STATE_KEY]))

    auth = BearerAuth(
        app,
        validator=FixedPrincipals(principals),
        api_key_validator=None,
        resource=RESOURCE,
        resource_metadata_url="http://127.0.0.1:3232/.well-known/oauth-protected-resource/mcp",
        challenge_scopes=SCOPES,
    )

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        raise AssertionError(f"refused: {message}")

    order = [
        "token-alice",
        "token-bob",
        "token-alice",
        "token-carol",
        "token-dana",
        "token-bob",
        "token-alice",
    ]
    for token in order:
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/mcp",
            "query_string": b"",
            "headers": [(b"authorization", f"Bearer {token}".encode())],
        }
        await auth(scope, receive, send)
    assert len(seen) == len(order)
    for token, (user, seen_principal) in zip(order, seen, strict=True):
        expected = principals[token]
        assert seen_principal is expected
        assert user.access_token.subject == expected.subject
        assert user.access_token.client_id == expected.client_id
        assert user.access_token.scopes == sorted(expected.scopes)
        assert user.access_token.token == "[redacted]"
    assert seen[0][0] is seen[2][0]  # alice's user object was built once while remembered
    assert len(auth._users) <= 2
