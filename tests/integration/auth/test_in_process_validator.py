"""The in-process TokenValidator (internal mode): what the MCP server learns from a bearer token."""

from __future__ import annotations

import time
from typing import Any

import httpx2
import pytest

from auth_server import crypto
from auth_server.validator import InProcessTokenValidator
from shared.settings import Settings
from shared.storage.base import Store
from shared.storage.redis import RedisStore
from shared.validation import TokenRejected, ValidatorUnavailable
from tests.fixtures.redis_server import free_port
from tests.integration.auth.conftest import ALL_DEPLOYMENTS, Configure, HttpFactory
from tests.integration.auth.helpers import (
    OTHER_MCP,
    RESOURCE,
    add_client,
    make_settings,
    redeem,
    store_code,
    tokens_for,
)

# In every deployment: the validator reads tokens straight from the store (one read, expiry, an unreachable
# store).
DEPLOYMENTS = ALL_DEPLOYMENTS


class CountingStore:
    """Wraps a Store and counts reads, to hold the validator to its one-read promise."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner
        self.reads = 0

    async def get(self, key: str) -> str | None:
        self.reads += 1
        return await self._inner.get(key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


async def test_a_valid_access_token_becomes_a_principal(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    body = await tokens_for(http, store, settings, client, scope=("notes:read", "notes:write"))
    principal = await InProcessTokenValidator.from_settings(settings, store).validate(body["access_token"])
    assert principal.subject == "demo"
    assert principal.client_id == client.client_id
    assert principal.scopes == frozenset({"notes:read", "notes:write"})
    assert principal.audience == (RESOURCE,)
    assert principal.issuer == settings.issuer
    assert principal.expires_at is not None


@pytest.mark.parametrize("token_format", ["opaque", "jwt"])
async def test_validation_costs_one_store_read(
    make_http: HttpFactory, store: Store, token_format: str, configure: Configure
) -> None:
    http = await make_http(token_format=token_format)
    settings = configure(token_format=token_format)
    client = await add_client(store)
    body = await tokens_for(http, store, settings, client)
    counting = CountingStore(store)
    validator = InProcessTokenValidator.from_settings(settings, counting)
    await validator.validate(body["access_token"])  # warms the key cache (jwt)
    counting.reads = 0
    for _ in range(10):
        await validator.validate(body["access_token"])
    assert counting.reads == 10


async def test_refresh_tokens_and_codes_are_not_access_tokens(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    body = await tokens_for(http, store, settings, client)
    code = await store_code(store, client, settings=settings)
    validator = InProcessTokenValidator.from_settings(settings, store)
    for artifact in (body["refresh_token"], code.code):
        with pytest.raises(TokenRejected) as rejected:
            await validator.validate(artifact)
        assert rejected.value.reason == "not_an_access_token"


async def test_a_token_for_another_resource_is_rejected(
    make_http: HttpFactory, store: Store, configure: Configure
) -> None:
    """Same issuer, another MCP deployment's resource: the audience check refuses it."""
    overrides = {"auth_issuer_url": configure().issuer, "mcp_public_url": OTHER_MCP}
    other = await make_http(**overrides)
    other_settings = configure(**overrides)
    client = await add_client(store)
    code = await store_code(store, client, settings=other_settings, resource=f"{OTHER_MCP}/mcp")
    body = (await redeem(other, code, client, resource=f"{OTHER_MCP}/mcp")).json()
    with pytest.raises(TokenRejected) as rejected:
        await InProcessTokenValidator.from_settings(configure(), store).validate(body["access_token"])
    assert rejected.value.reason == "wrong_audience"


async def test_unknown_malformed_expired_and_revoked_tokens_are_rejected(
    make_http: HttpFactory, store: Store, configure: Configure
) -> None:
    http = await make_http(access_token_ttl=1)
    settings = configure(access_token_ttl=1)
    validator = InProcessTokenValidator.from_settings(settings, store)
    for token, reason in (
        ("", "malformed"),
        ("x" * 10_000, "malformed"),
        (crypto.new_credential(), "unknown"),
    ):
        with pytest.raises(TokenRejected) as rejected:
            await validator.validate(token)
        assert rejected.value.reason == reason
    client = await add_client(store)
    revoked = await tokens_for(http, store, settings, client)
    await http.post("/revoke", data={"token": revoked["access_token"], **client.auth()})
    expiring = await tokens_for(http, store, settings, client)
    with pytest.raises(TokenRejected) as rejected:
        await validator.validate(revoked["access_token"])
    assert rejected.value.reason == "unknown"
    await validator.validate(expiring["access_token"])  # alive now; one second on, past its exp:
    later = InProcessTokenValidator.from_settings(settings, store, clock=lambda: time.time() + 1)
    with pytest.raises(TokenRejected) as rejected:
        await later.validate(expiring["access_token"])
    assert rejected.value.reason == "expired"


async def test_an_unreachable_store_makes_the_validator_unavailable_not_a_rejection() -> None:
    dead = RedisStore.from_url(f"redis://127.0.0.1:{free_port()}/0")
    try:
        with pytest.raises(ValidatorUnavailable):
            await InProcessTokenValidator.from_settings(make_settings(), dead).validate(
                crypto.new_credential()
            )
    finally:
        await dead.close()
