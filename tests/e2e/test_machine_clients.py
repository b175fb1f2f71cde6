"""Machine clients (SEP-1046) through the MCP Python SDK's own providers, in both modes.

`ClientCredentialsOAuthProvider` (client_secret_basic and client_secret_post) and
`PrivateKeyJWTOAuthProvider` (RFC 7523 section 2.2: with the SDK's `SignedJWTParameters`
against keys configured inline, and with a workload-style assertion callback signing with a key
the client publishes at its `jwks_uri`) each discover the authorization server from the MCP
server's 401, get a client_credentials token and reach a tool call, on both protocol revisions.
The MCP TypeScript SDK's `ClientCredentialsProvider` and `PrivateKeyJwtProvider` do the same
(`ts_sdk_machine_client.mjs`).
The servers are the real processes; the jwks_uri is a real web server on loopback.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx2
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey
from mcp.client import Client
from mcp.client.auth.extensions.client_credentials import (
    ClientCredentialsOAuthProvider,
    PrivateKeyJWTOAuthProvider,
    SignedJWTParameters,
)
from mcp.client.streamable_http import streamable_http_client

from mcp_server.auth_extensions import CLIENT_CREDENTIALS_EXTENSION, ENTERPRISE_MANAGED_EXTENSION
from tests.e2e.fixtures import BOTH_MODES_MEMORY
from tests.e2e.node_tools import NODE_BIN, TOOLS_NODE_MODULES, node_env, tool
from tests.e2e.sdk_client import REVISIONS, MemoryTokenStorage, Revision, structured
from tests.e2e.servers import Deployment, build_deployment
from tests.fixtures.live_server import live_server
from tests.security.document_host import DocumentHost

SCOPE = "mcp:tools:read notes:read"
TS_SCRIPT = Path(__file__).with_name("ts_sdk_machine_client.mjs")
SECRET_CLIENT = {"client_id": "nightly-report", "client_secret": secrets.token_urlsafe(32)}
INLINE_KEY = RSAKey.generate_key(2048, parameters={"kid": "inline-1"})
PUBLISHED_KEY = ECKey.generate_key("P-256", parameters={"kid": "published-1"})


def key_set(*keys: RSAKey | ECKey) -> bytes:
    return json.dumps({"keys": [key.as_dict(private=False) for key in keys]}).encode()


@dataclass
class World:
    deployment: Deployment
    documents: DocumentHost
    jwks_uri: str


@pytest.fixture(scope="module", params=BOTH_MODES_MEMORY)
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    mode, store = request.param
    documents = DocumentHost()
    with live_server(documents.app):
        jwks_uri = documents.serve(key_set(PUBLISHED_KEY))
        clients = [
            {**SECRET_CLIENT, "grant_types": ["client_credentials"], "scope": SCOPE},
            {
                **{"client_id": "signed-report", "token_endpoint_auth_method": "private_key_jwt"},
                **{"grant_types": ["client_credentials"], "scope": SCOPE},
                "jwks": {"keys": [INLINE_KEY.as_dict(private=False)]},
            },
            {
                **{"client_id": "workload", "token_endpoint_auth_method": "private_key_jwt"},
                **{"grant_types": ["client_credentials"], "scope": "mcp:tools:read"},
                "jwks_uri": jwks_uri,
            },
        ]
        env = {"AUTH_CLIENTS": json.dumps(clients), "CIMD_ALLOW_LOOPBACK": "true"}
        deployment = build_deployment(
            mode, store, Path(tmp_path_factory.mktemp(f"machine-{mode}")), env=env
        ).start()
        try:
            yield World(deployment, documents, jwks_uri)
        finally:
            deployment.stop()


@contextlib.asynccontextmanager
async def connected(
    deployment: Deployment, provider: httpx2.Auth, revision: Revision | Literal["auto"]
) -> AsyncIterator[Client]:
    """An SDK client session; "auto" probes `server/discover` as a 2026-07-28 client does first."""
    async with httpx2.AsyncClient(auth=provider, timeout=30.0, trust_env=False) as http:
        mode = "legacy" if revision == "2025-11-25" else revision
        async with Client(streamable_http_client(deployment.mcp_url, http_client=http), mode=mode) as client:
            yield client


async def whoami(deployment: Deployment, provider: httpx2.Auth, revision: Revision) -> dict[str, Any]:
    async with connected(deployment, provider, revision) as client:
        result = await client.call_tool("whoami", {})
        assert not result.is_error, result
        return structured(result)


@pytest.mark.parametrize("revision", REVISIONS)
@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
async def test_a_machine_client_with_a_secret_reaches_a_tool_through_the_sdk_provider(
    world: World, method: str, revision: Revision
) -> None:
    storage = MemoryTokenStorage()
    provider = ClientCredentialsOAuthProvider(
        server_url=world.deployment.mcp_url,
        storage=storage,
        client_id=SECRET_CLIENT["client_id"],
        client_secret=SECRET_CLIENT["client_secret"],
        token_endpoint_auth_method=method,  # type: ignore[arg-type]
        scope=SCOPE,
        issuer=world.deployment.issuer,
    )
    me = await whoami(world.deployment, provider, revision)
    assert me["subject"] == "client:nightly-report"
    assert storage.tokens is not None
    assert storage.tokens.refresh_token is None  # a machine client asks again; nothing to refresh
    assert set((storage.tokens.scope or "").split()) == set(SCOPE.split())


@pytest.mark.parametrize("revision", REVISIONS)
async def test_the_sdk_signed_jwt_authenticates_a_client_with_configured_keys(
    world: World, revision: Revision
) -> None:
    pem = INLINE_KEY.as_pem(private=True).decode()
    assertion = SignedJWTParameters(issuer="signed-report", subject="signed-report", signing_key=pem)
    provider = PrivateKeyJWTOAuthProvider(
        server_url=world.deployment.mcp_url,
        storage=MemoryTokenStorage(),
        client_id="signed-report",
        assertion_provider=assertion.create_assertion_provider(),
        scope=SCOPE,
        issuer=world.deployment.issuer,
    )
    me = await whoami(world.deployment, provider, revision)
    assert me["subject"] == "client:signed-report"
    assert set(me["scopes"]) == set(SCOPE.split())


def signed_by(key: ECKey, client_id: str, audience: str) -> str:
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": audience, "iat": now, "exp": now + 60}
    return jwt.encode({"alg": "ES256", "kid": key.kid}, {**claims, "jti": uuid.uuid4().hex}, key)


@pytest.mark.parametrize("revision", REVISIONS)
async def test_a_workload_signing_with_a_published_key_reaches_a_tool(
    world: World, revision: Revision
) -> None:
    async def assertion_for(audience: str) -> str:
        return signed_by(PUBLISHED_KEY, "workload", audience)

    provider = PrivateKeyJWTOAuthProvider(
        server_url=world.deployment.mcp_url,
        storage=MemoryTokenStorage(),
        client_id="workload",
        assertion_provider=assertion_for,
        scope="mcp:tools:read",
        issuer=world.deployment.issuer,
    )
    me = await whoami(world.deployment, provider, revision)
    assert me["subject"] == "client:workload"
    assert world.documents.hits(world.jwks_uri) >= 1


async def test_the_server_declares_the_client_credentials_extension_on_2026_07_28(world: World) -> None:
    """In `server/discover`'s capabilities (2025-11-25's initialize result has no `extensions` member
    in its schema, so the SDK leaves them out there)."""
    provider = ClientCredentialsOAuthProvider(
        server_url=world.deployment.mcp_url,
        storage=MemoryTokenStorage(),
        client_id=SECRET_CLIENT["client_id"],
        client_secret=SECRET_CLIENT["client_secret"],
        scope=SCOPE,
        issuer=world.deployment.issuer,
    )
    async with connected(world.deployment, provider, "auto") as client:
        assert client.protocol_version == "2026-07-28"
        extensions = client.server_capabilities.extensions or {}
    assert CLIENT_CREDENTIALS_EXTENSION in extensions
    assert ENTERPRISE_MANAGED_EXTENSION not in extensions  # no enterprise provider is trusted here


def test_the_metadata_advertises_private_key_jwt_and_its_algorithms(world: World) -> None:
    with httpx2.Client(trust_env=False, timeout=10.0) as http:
        metadata = http.get(f"{world.deployment.issuer}/.well-known/oauth-authorization-server").json()
    assert "private_key_jwt" in metadata["token_endpoint_auth_methods_supported"]
    assert {"RS256", "ES256"} <= set(metadata["token_endpoint_auth_signing_alg_values_supported"])
    assert "client_credentials" in metadata["grant_types_supported"]


@pytest.mark.parametrize("credential", ["client_secret_basic", "private_key_jwt"])
def test_the_typescript_sdk_machine_providers_reach_a_tool(
    world: World, credential: str, tmp_path: Path
) -> None:
    tool("mcp-inspector")  # the pinned Node tools are installed: the SDK comes with the Inspector
    if credential == "client_secret_basic":
        client_id = SECRET_CLIENT["client_id"]
        proof = {"CLIENT_SECRET": SECRET_CLIENT["client_secret"]}
    else:
        client_id = "signed-report"
        proof = {"PRIVATE_KEY_PEM": INLINE_KEY.as_pem(private=True).decode(), "SIGNING_ALG": "RS256"}
    done = subprocess.run(
        [str(NODE_BIN / "node"), str(TS_SCRIPT)],
        env=node_env(
            tmp_path,
            MCP_TOOLS_NODE_MODULES=str(TOOLS_NODE_MODULES),
            MCP_URL=world.deployment.mcp_url,
            ISSUER=world.deployment.issuer,
            CLIENT_ID=client_id,
            SCOPE=SCOPE,
            **proof,
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr + world.deployment.logs()
    *calls, summary = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(calls) == 2
    for call in calls:
        assert call["isError"] is False, call
        assert call["whoami"]["subject"] == f"client:{client_id}"
        assert call["whoami"]["client_id"] == client_id
        assert sorted(call["whoami"]["scopes"]) == sorted(SCOPE.split())
    assert summary == {"tokenType": "Bearer"}
