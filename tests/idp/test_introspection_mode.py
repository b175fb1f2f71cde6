"""Introspection mode: the provider issues opaque tokens, the MCP server asks it about each one.

RFC 7662 with client_secret_post, as a client registered at the provider (INTROSPECTION_*), the
endpoint found by discovery. The MCP SDK client signs in at the provider, calls tools, and keeps
going on a refreshed token when its access token runs out, without a new sign-in.
"""

from __future__ import annotations

import pytest

from shared.scopes import CATALOGUE
from tests.e2e.sdk_client import REVISIONS, HeadlessUser, Revision, make_sdk_client, structured
from tests.idp.conftest import World


@pytest.mark.parametrize("revision", REVISIONS)
async def test_the_sdk_client_signs_in_at_the_provider_and_its_opaque_token_is_introspected(
    world: World, revision: Revision
) -> None:
    sdk = make_sdk_client(world.introspection.mcp_url, HeadlessUser("alice", "alice-password"))
    async with sdk.connect(revision) as client:
        identity = structured(await client.call_tool("whoami", {}))

    assert identity["subject"] == "alice"
    assert identity["issuer"] == world.idp.issuer
    assert identity["audience"] == [world.introspection.mcp_url]
    assert set(CATALOGUE.baseline) <= set(identity["scopes"])
    assert sdk.storage.tokens is not None
    assert sdk.storage.tokens.access_token.count(".") != 2, "this resource gets opaque tokens"
    assert sdk.user.requested()["resource"] == world.introspection.mcp_url


async def test_a_refreshed_token_from_the_provider_keeps_the_session_going(world: World) -> None:
    sdk = make_sdk_client(world.introspection.mcp_url, HeadlessUser("bob", "bob-password"))
    async with sdk.connect("2026-07-28") as client:
        assert structured(await client.call_tool("whoami", {}))["subject"] == "bob"
        assert sdk.storage.tokens is not None
        first = sdk.storage.tokens
        assert first.refresh_token
        sdk.provider.context.token_expiry_time = 1.0  # as if it ran out: the SDK refreshes first
        assert structured(await client.call_tool("whoami", {}))["subject"] == "bob"

    assert sdk.user.logins == 1, "a refresh, not a new sign-in"
    assert sdk.storage.tokens is not None
    assert sdk.storage.tokens.access_token != first.access_token
    assert sdk.traffic.statuses_for(world.idp.issuer + "/token") == [200, 200]
