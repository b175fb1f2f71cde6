"""Enterprise-managed authorization (SEP-990) with the MCP SDK's `IdentityAssertionOAuthProvider`.

A person signs in at the enterprise's identity provider (oidc-provider, a real process) in the
agent app; the app exchanges the ID token there for an ID-JAG naming our authorization server
and our MCP server (RFC 8693 at the provider); the SDK's provider presents it to our token
endpoint (the jwt-bearer grant) and calls tools with the token it gets: no sign-in or consent page
at our server. In both modes, on both protocol revisions.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio.to_thread
import httpx2
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey
from mcp.client import Client
from mcp.client.auth.extensions.identity_assertion import IdentityAssertionOAuthProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from mcp_server.auth_extensions import ENTERPRISE_MANAGED_EXTENSION
from shared.oauth import JWT_BEARER_GRANT
from tests.e2e.fixtures import BOTH_MODES_MEMORY
from tests.e2e.sdk_client import REVISIONS, MemoryTokenStorage, Revision, structured
from tests.fixtures.dpop_client import DPoPKey
from tests.fixtures.enterprise_idp import AGENT, AGENT_SCOPE, Enterprise, enterprise
from tests.fixtures.live_server import live_server
from tests.idp.provider import USERS
from tests.resilience.cluster import modern_call, rpc_result
from tests.security.document_host import DocumentHost

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture(scope="module")
def documents() -> Iterator[DocumentHost]:
    """Where a client that is not pre-registered publishes its client ID metadata document."""
    host = DocumentHost()
    with live_server(host.app):
        yield host


@pytest.fixture(scope="module", params=BOTH_MODES_MEMORY)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, documents: DocumentHost
) -> Iterator[Enterprise]:
    mode, store = request.param
    workdir = Path(tmp_path_factory.mktemp(f"enterprise-{mode}"))
    with enterprise(workdir, mode, store, env={"CIMD_ALLOW_LOOPBACK": "true"}) as running:
        yield running


def agent_provider(
    world: Enterprise, user: str, storage: MemoryTokenStorage
) -> IdentityAssertionOAuthProvider:
    """The SDK's provider as the agent app configures it; `fetch_id_jag` is the app's own part
    (single sign-on and the token exchange at its identity provider), which the SDK leaves to it."""
    id_token = world.sign_in(user, USERS[user]["password"])

    async def fetch_id_jag(audience: str, resource: str) -> str:
        return await anyio.to_thread.run_sync(
            lambda: world.id_jag(id_token, audience=audience, resource=resource, scope=AGENT_SCOPE)
        )

    return IdentityAssertionOAuthProvider(
        server_url=world.deployment.mcp_url,
        storage=storage,
        client_id=AGENT,
        client_secret=world.agent_secret,
        issuer=world.deployment.issuer,
        assertion_provider=fetch_id_jag,
        scope=AGENT_SCOPE,
    )


@contextlib.asynccontextmanager
async def connected(
    world: Enterprise, provider: httpx2.Auth, revision: Revision | str
) -> AsyncIterator[Client]:
    async with httpx2.AsyncClient(auth=provider, timeout=30.0, trust_env=False) as http:
        mode = "legacy" if revision == "2025-11-25" else revision
        async with Client(
            streamable_http_client(world.deployment.mcp_url, http_client=http), mode=mode
        ) as client:
            yield client


@pytest.mark.parametrize("revision", REVISIONS)
async def test_a_signed_in_employee_reaches_tools_with_an_id_jag_and_no_consent_page(
    world: Enterprise, revision: Revision
) -> None:
    storage = MemoryTokenStorage()
    provider = agent_provider(world, "alice", storage)
    async with connected(world, provider, revision) as client:
        me = structured(await client.call_tool("whoami", {}))
        added = await client.call_tool("notes_add", {"text": f"from the enterprise agent on {revision}"})
        assert not added.is_error, added
        listed = structured(await client.call_tool("notes_list", {}))
    # The provider's subject, namespaced by its issuer: never a local user, never another provider's.
    assert me["subject"] == f"{world.idp.issuer}#alice"
    assert me["client_id"] == AGENT
    assert any("enterprise agent" in str(note) for note in listed["notes"]), listed
    assert storage.tokens is not None
    assert storage.tokens.refresh_token is None  # a new ID-JAG is the way to a new token
    assert set((storage.tokens.scope or "").split()) == set(AGENT_SCOPE.split())


async def test_the_providers_policy_narrows_what_a_user_gets(world: Enterprise) -> None:
    """bob may only read by the provider's policy: the ID-JAG says so, and the token follows."""
    storage = MemoryTokenStorage()
    async with connected(world, agent_provider(world, "bob", storage), "2026-07-28") as client:
        me = structured(await client.call_tool("whoami", {}))
        assert set(me["scopes"]) == {"mcp:tools:read", "notes:read"}
        # 403 insufficient_scope; the SDK asks for a new ID-JAG, which the policy cannot widen.
        with pytest.raises(MCPError):
            await client.call_tool("notes_add", {"text": "bob may not write"})


async def test_the_server_advertises_the_grant_and_declares_the_extension(world: Enterprise) -> None:
    with httpx2.Client(trust_env=False, timeout=10.0) as http:
        metadata = http.get(f"{world.deployment.issuer}/.well-known/oauth-authorization-server").json()
    assert JWT_BEARER_GRANT in metadata["grant_types_supported"]
    assert metadata["authorization_grant_profiles_supported"] == [
        "urn:ietf:params:oauth:grant-profile:id-jag"
    ]
    provider = agent_provider(world, "alice", MemoryTokenStorage())
    async with connected(world, provider, "auto") as client:
        assert ENTERPRISE_MANAGED_EXTENSION in (client.server_capabilities.extensions or {})


def test_a_client_known_only_by_its_metadata_document_presents_an_id_jag_with_its_key(
    world: Enterprise, documents: DocumentHost
) -> None:
    """SEP-990 section 5: a client not pre-registered uses its client ID metadata document as its
    client_id and authenticates with private_key_jwt. Without its key, the same ID-JAG gets nothing."""
    key = ECKey.generate_key("P-256", parameters={"kid": "document-agent-1"})
    client_id = documents.client_document(
        client_name="Document agent",
        grant_types=[JWT_BEARER_GRANT],
        token_endpoint_auth_method="private_key_jwt",
        jwks={"keys": [key.as_dict(private=False)]},
    )
    now = int(time.time())

    def key_proof() -> dict[str, str]:
        claims = {"iss": client_id, "sub": client_id, "aud": world.deployment.issuer, "iat": now,
                  "exp": now + 60, "jti": uuid.uuid4().hex}  # fmt: skip
        assertion = jwt.encode({"alg": "ES256", "kid": key.kid}, claims, key)
        return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}

    unproven = world.present(world.forge(client_id=client_id), client=None, client_id=client_id)
    assert unproven.status_code == 401, unproven.text
    assert unproven.json()["error"] == "invalid_client"

    granted = world.present(world.forge(client_id=client_id), client=None, **key_proof())
    assert granted.status_code == 200, granted.text
    body = granted.json()
    assert "refresh_token" not in body
    call, headers = modern_call("whoami", {}, body["access_token"])
    with httpx2.Client(trust_env=False, timeout=15.0) as http:
        me = rpc_result(http.post(world.deployment.mcp_url, json=call, headers=headers))
    assert me["structuredContent"]["subject"] == f"{world.idp.issuer}#alice"
    assert me["structuredContent"]["client_id"] == client_id


def test_an_id_jag_presented_with_a_dpop_proof_gets_a_token_only_that_key_can_use(world: Enterprise) -> None:
    """SEP-990 with RFC 9449: the jwt-bearer grant binds the token to the proof's key (`cnf.jkt`)
    like every other grant; the token is then refused as Bearer (section 7.2) and with another
    key's proof, and answers with a fresh proof by its own key."""
    key, other = DPoPKey.generate(), DPoPKey.generate()
    id_jag = world.id_jag(
        world.sign_in("alice", USERS["alice"]["password"]),
        audience=world.deployment.issuer,
        resource=world.deployment.mcp_url,
        scope=AGENT_SCOPE,
    )
    granted = world.present(id_jag, headers={"DPoP": key.proof("POST", world.token_endpoint)})
    assert granted.status_code == 200, granted.text
    body = granted.json()
    assert body["token_type"] == "DPoP"
    assert "refresh_token" not in body
    token = body["access_token"]

    def call(scheme: str, proof_key: DPoPKey | None) -> httpx2.Response:
        request, headers = modern_call("whoami", {}, token)
        headers["authorization"] = f"{scheme} {token}"
        if proof_key is not None:
            headers["dpop"] = proof_key.proof("POST", world.deployment.mcp_url, token=token)
        with httpx2.Client(trust_env=False, timeout=15.0) as http:
            return http.post(world.deployment.mcp_url, json=request, headers=headers)

    as_bearer = call("Bearer", None)
    assert as_bearer.status_code == 401, as_bearer.text
    assert "DPoP-bound" in as_bearer.json()["error_description"]
    assert "DPoP algs=" in as_bearer.headers["www-authenticate"]
    with_another_key = call("DPoP", other)
    assert with_another_key.status_code == 401, with_another_key.text
    assert 'error="invalid_dpop_proof"' in with_another_key.headers["www-authenticate"]
    me = rpc_result(call("DPoP", key))
    assert me["structuredContent"]["subject"] == f"{world.idp.issuer}#alice"
    assert me["structuredContent"]["client_id"] == AGENT
