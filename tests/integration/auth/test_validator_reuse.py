"""The in-process validator's hot path reuses work, never decisions (docs/performance.md).

`TokenService` keeps the parsed record for a stored value and `InProcessTokenValidator` the
Principal built from it, so a token presented again costs one Store read and no parsing. These
tests hold that to "the Store still decides every time": revocation (deleting the record, which is
what /revoke does) and expiry take effect on the very next call, each token keeps its own
identity, and both memos stay bounded. Tokens are minted by the AS's own `TokenService`.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from auth_server import tokens as tokens_module
from auth_server import validator as validator_module
from auth_server.signing_keys import SigningKeys
from auth_server.tokens import IssuedTokens, TokenService
from auth_server.validator import InProcessTokenValidator
from shared.settings import Settings
from shared.storage.base import Store
from shared.storage.factory import open_store
from shared.validation import TokenRejected

RESOURCE = "http://127.0.0.1:3232/mcp"


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def settings(**values: Any) -> Settings:
    base: dict[str, Any] = {"auth_mode": "internal", "host": "127.0.0.1", "mcp_port": 3232, "redis_url": None}
    return Settings(_env_file=None, **{**base, **values})  # type: ignore[call-arg]


async def issue(
    service: TokenService, subject: str = "alice", scopes: tuple[str, ...] = ("mcp:tools:read",)
) -> IssuedTokens:
    return await service.issue(
        client_id=f"client-of-{subject}", subject=subject, scopes=scopes, resource=RESOURCE, grant_id="g"
    )


def parts(
    config: Settings, clock: FakeClock | None = None
) -> tuple[Store, TokenService, InProcessTokenValidator]:
    store = open_store(config)
    keys = SigningKeys.from_settings(config, store)
    service = TokenService.from_settings(config, store, keys)
    kwargs: dict[str, Any] = {"keys": keys}
    if clock is not None:
        kwargs["clock"] = clock
    return store, service, InProcessTokenValidator.from_settings(config, store, **kwargs)


@pytest.mark.parametrize("token_format", ["opaque", "jwt"])
async def test_a_token_presented_again_gets_the_same_principal_until_it_is_revoked(token_format: str) -> None:
    store, service, validator = parts(settings(token_format=token_format))
    issued = await issue(service)
    first = await validator.validate(issued.access_token)
    again = await validator.validate(issued.access_token)
    assert again is first  # built once
    assert first.subject == "alice"
    await store.delete(*issued.store_keys)  # what revocation does: the records go
    with pytest.raises(TokenRejected) as rejected:
        await validator.validate(issued.access_token)
    assert rejected.value.reason == "unknown"


@pytest.mark.parametrize("token_format", ["opaque", "jwt"])
async def test_a_remembered_principal_still_expires(token_format: str) -> None:
    clock = FakeClock()
    _, service, validator = parts(settings(token_format=token_format, access_token_ttl=60), clock)
    issued = await issue(service)
    await validator.validate(issued.access_token)
    await validator.validate(issued.access_token)
    clock.now += 61
    with pytest.raises(TokenRejected) as rejected:
        await validator.validate(issued.access_token)
    assert rejected.value.reason == "expired"


async def test_each_token_keeps_its_own_principal_and_the_memos_stay_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tokens_module, "PARSED_RECORDS_MAX", 3)
    monkeypatch.setattr(validator_module, "PRINCIPALS_MAX", 3)
    _, service, validator = parts(settings())
    issued = []
    for index in range(6):
        scopes = ("mcp:tools:read",) if index % 2 else ("mcp:tools:read", "notes:read")
        issued.append((f"user-{index}", scopes, await issue(service, f"user-{index}", scopes)))
    for _ in range(2):  # twice round: the second pass finds some remembered and some dropped
        for subject, scopes, tokens in issued:
            principal = await validator.validate(tokens.access_token)
            assert principal.subject == subject
            assert principal.client_id == f"client-of-{subject}"
            assert principal.scopes == frozenset(scopes)
    assert len(validator._principals) <= 3
    assert len(validator._tokens._parsed) <= 3
