"""Issuers with a path, shaped like Scalekit: JWT, introspection and federated login all work.

The provider (`path_world` in conftest.py) serves one issuer per resource under
http://127.0.0.1:PORT/resources/<resource id>, publishes RFC 8414 metadata only, its keys at the
environment's /keys, and JWT access tokens whose `iss` is the environment URL and whose `aud` is
only the resource ID: what Scalekit documents. The MCP SDK's own OAuth client does everything
from our 401 on, as in test_jwt_mode.py; the MCP servers are configured with nothing but settings
(AUTH_SERVER_URL = the resource's issuer, ACCEPTED_AUDIENCES = the resource ID, ACCEPTED_ISSUERS =
the environment URL).
"""

from __future__ import annotations

import base64
import json

import httpx2
import pytest

from tests.e2e.sdk_client import REVISIONS, HeadlessUser, Revision, make_sdk_client, structured, text_of
from tests.idp.conftest import (
    JWT_RESOURCE_ID,
    LOGIN_RESOURCE_ID,
    OPAQUE_RESOURCE_ID,
    PathWorld,
    rejection,
    settings_of,
)
from tests.idp.flows import MCP_SCOPE

ALICE = ("alice", "alice-password")


def claims_of(token: str) -> dict[str, object]:
    encoded = token.split(".")[1]
    claims: dict[str, object] = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    return claims


def test_the_provider_is_shaped_like_scalekit(path_world: PathWorld) -> None:
    issuer = path_world.issuer_of(JWT_RESOURCE_ID)
    environment = path_world.idp.issuer
    with httpx2.Client(trust_env=False, timeout=5.0) as http:
        inserted = http.get(
            f"{environment}/.well-known/oauth-authorization-server/resources/{JWT_RESOURCE_ID}"
        )
        appended = http.get(f"{issuer}/.well-known/oauth-authorization-server")
        openid = http.get(f"{issuer}/.well-known/openid-configuration")
        prm = http.get(path_world.jwt.base_url + "/.well-known/oauth-protected-resource/mcp").json()
    assert inserted.status_code == appended.status_code == 200
    assert inserted.json()["issuer"] == issuer
    assert inserted.json()["jwks_uri"] == f"{environment}/keys"
    assert inserted.json()["token_endpoint"] == f"{issuer}/token"
    assert openid.status_code == 404
    # Our metadata names the resource's issuer, and our own URL as the resource (never the ID).
    assert prm["authorization_servers"] == [issuer]
    assert prm["resource"] == path_world.jwt.mcp_url


@pytest.mark.parametrize("revision", REVISIONS)
async def test_the_sdk_client_signs_in_at_a_path_issuer_and_its_jwt_naming_the_resource_id_is_accepted(
    path_world: PathWorld, revision: Revision
) -> None:
    sdk = make_sdk_client(path_world.jwt.mcp_url, HeadlessUser(*ALICE))
    async with sdk.connect(revision) as client:
        identity = structured(await client.call_tool("whoami", {}))

    environment = path_world.idp.issuer
    issuer = path_world.issuer_of(JWT_RESOURCE_ID)
    assert identity["subject"] == "alice"
    assert identity["issuer"] == environment, "the token's iss, one of ACCEPTED_ISSUERS"
    assert identity["audience"] == [JWT_RESOURCE_ID]
    assert sdk.storage.tokens is not None
    claims = claims_of(sdk.storage.tokens.access_token)
    assert claims["iss"] == environment
    assert claims["aud"] == JWT_RESOURCE_ID
    # The SDK found the provider by RFC 8414 path-inserted discovery, registered, signed in and
    # got its token at the resource's own path.
    assert sdk.traffic.statuses_for(
        f"{environment}/.well-known/oauth-authorization-server/resources/{JWT_RESOURCE_ID}"
    ) == [200]
    assert 201 in sdk.traffic.statuses_for(f"{issuer}/reg")
    assert sdk.traffic.statuses_for(f"{issuer}/token") == [200]
    assert sdk.user.requested()["resource"] == path_world.jwt.mcp_url
    assert sdk.user.responses[-1].iss == issuer


async def test_step_up_and_refresh_at_a_path_issuer(path_world: PathWorld) -> None:
    sdk = make_sdk_client(path_world.jwt.mcp_url, HeadlessUser("bob", "bob-password"))
    async with sdk.connect("2026-07-28") as client:
        assert not (await client.call_tool("notes_list", {})).is_error
        added = await client.call_tool("notes_add", {"text": "written under a path issuer"})
        assert not added.is_error, text_of(added)
        listed = structured(await client.call_tool("notes_list", {}))
    assert [note["text"] for note in listed["notes"]] == ["written under a path issuer"]
    assert sdk.user.logins == 2, "the step-up to notes:write asked the provider again"
    assert "notes:write" in sdk.user.requested(1)["scope"].split()
    assert sdk.storage.tokens is not None
    assert sdk.storage.tokens.refresh_token


@pytest.mark.parametrize("revision", REVISIONS)
async def test_the_sdk_client_gets_an_opaque_token_introspected_at_the_path_issuer(
    path_world: PathWorld, revision: Revision
) -> None:
    sdk = make_sdk_client(path_world.introspection.mcp_url, HeadlessUser(*ALICE))
    async with sdk.connect(revision) as client:
        identity = structured(await client.call_tool("whoami", {}))
    assert identity["subject"] == "alice"
    assert identity["issuer"] == path_world.issuer_of(OPAQUE_RESOURCE_ID), "introspection names the issuer"
    assert identity["audience"] == [OPAQUE_RESOURCE_ID]
    assert sdk.storage.tokens is not None
    assert sdk.storage.tokens.access_token.count(".") != 2, "an opaque token"


@pytest.mark.parametrize("revision", REVISIONS)
async def test_federated_login_at_a_path_issuer(path_world: PathWorld, revision: Revision) -> None:
    sdk = make_sdk_client(path_world.federated.mcp_url, HeadlessUser(*ALICE))
    async with sdk.connect(revision) as client:
        identity = structured(await client.call_tool("whoami", {}))
    upstream = path_world.issuer_of(LOGIN_RESOURCE_ID)
    assert identity["subject"] == f"{upstream}#alice"
    assert identity["issuer"] == path_world.federated.issuer
    last = sdk.user.responses[-1]
    assert last.saw_login
    assert last.saw_consent
    assert any(step.startswith(f"GET {upstream}/auth?") for step in last.visited)


async def test_without_the_accepted_issuer_and_audience_the_same_token_is_refused(
    path_world: PathWorld,
) -> None:
    """What ACCEPTED_ISSUERS and ACCEPTED_AUDIENCES change, on one real token from the provider."""
    sdk = make_sdk_client(path_world.jwt.mcp_url, HeadlessUser(*ALICE))
    async with sdk.connect("2026-07-28") as client:
        await client.call_tool("whoami", {})
    assert sdk.storage.tokens is not None
    token = sdk.storage.tokens.access_token

    configured = {"accepted_issuers": [path_world.idp.issuer], "accepted_audiences": [JWT_RESOURCE_ID]}

    async def reason(**overrides: object) -> str | None:
        return await rejection(settings_of(path_world.jwt, **{**configured, **overrides}), token)

    assert await reason() is None
    assert await reason(accepted_issuers=[]) == "wrong_issuer"
    assert await reason(accepted_audiences=[]) == "wrong_audience"
    assert await reason(accepted_audiences=[JWT_RESOURCE_ID + "0"]) == "wrong_audience"


async def test_a_token_of_the_environment_root_signed_by_its_key_but_for_no_accepted_audience_is_refused(
    path_world: PathWorld,
) -> None:
    """Every resource of the environment shares the key and the `iss`: the audience is the only
    boundary between them, and it holds at the HTTP endpoint."""
    idp = path_world.idp
    accepted = idp.sign(idp.claims("alice", JWT_RESOURCE_ID, MCP_SCOPE))  # the control: all else is right
    with httpx2.Client(trust_env=False, timeout=5.0) as http:
        response = http.post(
            path_world.jwt.mcp_url,
            json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
            headers={"authorization": f"Bearer {accepted}", "accept": "application/json, text/event-stream"},
        )
    assert response.status_code != 401, response.text
    for audience in (
        OPAQUE_RESOURCE_ID,
        "res_",
        JWT_RESOURCE_ID.upper(),
        [OPAQUE_RESOURCE_ID, LOGIN_RESOURCE_ID],
    ):
        forged = idp.sign(idp.claims("alice", audience, MCP_SCOPE))  # type: ignore[arg-type]
        with httpx2.Client(trust_env=False, timeout=5.0) as http:
            response = http.post(
                path_world.jwt.mcp_url,
                json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                headers={
                    "authorization": f"Bearer {forged}",
                    "accept": "application/json, text/event-stream",
                },
            )
        assert response.status_code == 401, (audience, response.text)
        assert 'error="invalid_token"' in response.headers["www-authenticate"]
        assert response.json()["error_description"] == "The access token was not issued for this resource"
