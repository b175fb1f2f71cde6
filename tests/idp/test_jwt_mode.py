"""JWT mode: the MCP server alone trusts the third-party provider and checks its RFC 9068 JWTs.

The MCP SDK's own OAuth client does everything a real client would: it reads our protected
resource metadata, finds the provider there, discovers it, registers at it (DCR), signs in the
user there (PKCE, `resource`), and calls tools with the provider's JWT access token, which our
server verifies against the provider's JWKS.
"""

from __future__ import annotations

import base64
import json

import httpx2
import pytest

from shared.scopes import CATALOGUE
from tests.e2e.sdk_client import REVISIONS, HeadlessUser, Revision, make_sdk_client, structured, text_of
from tests.idp.conftest import World


def header_of(token: str) -> dict[str, object]:
    encoded = token.split(".")[0]
    header: dict[str, object] = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    return header


def test_the_protected_resource_metadata_names_the_provider_as_the_authorization_server(
    world: World,
) -> None:
    with httpx2.Client(trust_env=False, timeout=5.0) as http:
        prm = http.get(world.jwt.base_url + "/.well-known/oauth-protected-resource/mcp").json()
    assert prm["resource"] == world.jwt.mcp_url
    assert prm["authorization_servers"] == [world.idp.issuer]


@pytest.mark.parametrize("revision", REVISIONS)
async def test_the_sdk_client_signs_in_at_the_provider_and_its_jwt_is_accepted(
    world: World, revision: Revision
) -> None:
    sdk = make_sdk_client(world.jwt.mcp_url, HeadlessUser("alice", "alice-password"))
    async with sdk.connect(revision) as client:
        identity = structured(await client.call_tool("whoami", {}))

    assert identity["subject"] == "alice"
    assert identity["issuer"] == world.idp.issuer
    assert identity["audience"] == [world.jwt.mcp_url]
    assert set(CATALOGUE.baseline) <= set(identity["scopes"])
    assert sdk.user.logins == 1
    asked = sdk.user.requested()
    assert asked["resource"] == world.jwt.mcp_url
    assert asked["code_challenge_method"] == "S256"
    assert sdk.user.responses[-1].iss == world.idp.issuer
    assert sdk.storage.tokens is not None
    assert header_of(sdk.storage.tokens.access_token) == {
        "alg": "RS256",
        "typ": "at+jwt",
        "kid": world.idp.key.kid,
    }
    assert sdk.storage.tokens.refresh_token, "issueRefreshToken is configured at the provider"
    # Everything but /mcp went to the provider: its discovery, registration and token endpoints.
    assert 201 in sdk.traffic.statuses_for(world.idp.issuer + "/reg")
    assert sdk.traffic.statuses_for(world.idp.issuer + "/token") == [200]


async def test_step_up_to_notes_write_asks_the_provider_again_and_the_write_succeeds(world: World) -> None:
    sdk = make_sdk_client(world.jwt.mcp_url, HeadlessUser("bob", "bob-password"))
    async with sdk.connect("2026-07-28") as client:
        assert not (await client.call_tool("notes_list", {})).is_error  # signs in, read scopes only
        assert sdk.user.logins == 1
        added = await client.call_tool("notes_add", {"text": "written with a provider's token"})
        assert not added.is_error, text_of(added)
        listed = await client.call_tool("notes_list", {})
        assert "written with a provider's token" in text_of(listed)

    assert sdk.user.logins == 2
    assert "notes:write" in sdk.user.requested(1)["scope"].split()
    assert sdk.storage.tokens is not None
    assert "notes:write" in (sdk.storage.tokens.scope or "").split()
