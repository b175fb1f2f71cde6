"""private_key_jwt for a client ID metadata document client, with the MCP TypeScript SDK's client.

The client publishes its document (`token_endpoint_auth_method: private_key_jwt`, its public key
at a `jwks_uri`) on a real web server on loopback; the SDK's OAuth client
(`tests/e2e/ts_sdk_key_client.mjs`, the `@modelcontextprotocol/sdk` the pinned Inspector installs) runs the
authorization code flow with PKCE, a person signs in and consents, and the SDK's own
`createPrivateKeyJwtAuth` signs an assertion for the code exchange and again for the refresh.
In both modes. Then what a stolen code is worth to someone without the key: nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from tests.e2e import oauth_flow
from tests.e2e.fixtures import BOTH_MODES_MEMORY
from tests.e2e.login_driver import DEMO_USER, authorize, authorize_async
from tests.e2e.node_tools import NODE_BIN, TOOLS_NODE_MODULES, node_env, tool
from tests.e2e.servers import Deployment, build_deployment
from tests.fixtures.live_server import live_server
from tests.security.document_host import DocumentHost

SCRIPT = Path(__file__).with_name("ts_sdk_key_client.mjs")
REDIRECT_URI = "http://127.0.0.1:53124/callback"  # the document's; nothing listens there
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CLIENT_KEY = ECKey.generate_key("P-256", parameters={"kid": "document-client-1"})
OTHER_KEY = ECKey.generate_key("P-256", parameters={"kid": "document-client-1"})  # same kid, not its key
STEP_TIMEOUT = 60.0


@dataclass
class World:
    deployment: Deployment
    documents: DocumentHost
    client_id: str  # the document's URL
    jwks_uri: str


@pytest.fixture(scope="module", params=BOTH_MODES_MEMORY)
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    mode, store = request.param
    documents = DocumentHost()
    with live_server(documents.app):
        jwks_uri = documents.serve(json.dumps({"keys": [CLIENT_KEY.as_dict(private=False)]}).encode())
        client_id = documents.client_document(
            client_name="TypeScript SDK key client",
            redirect_uris=[REDIRECT_URI],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="private_key_jwt",
            jwks_uri=jwks_uri,
        )
        deployment = build_deployment(
            mode,
            store,
            Path(tmp_path_factory.mktemp(f"key-document-{mode}")),
            env={"CIMD_ALLOW_LOOPBACK": "true"},
        ).start()
        try:
            yield World(deployment, documents, client_id, jwks_uri)
        finally:
            deployment.stop()


async def next_message(process: asyncio.subprocess.Process) -> dict[str, Any]:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), STEP_TIMEOUT)
    assert line, "the SDK client ended early"
    message: dict[str, Any] = json.loads(line)
    return message


async def test_the_typescript_sdk_signs_in_and_refreshes_with_its_key(world: World, tmp_path: Path) -> None:
    tool("mcp-inspector")  # the pinned Node tools are installed: the SDK comes with the Inspector
    process = await asyncio.create_subprocess_exec(
        str(NODE_BIN / "node"),
        str(SCRIPT),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=node_env(
            tmp_path,
            MCP_TOOLS_NODE_MODULES=str(TOOLS_NODE_MODULES),
            MCP_URL=world.deployment.mcp_url,
            CLIENT_ID=world.client_id,
            REDIRECT_URI=REDIRECT_URI,
            PRIVATE_KEY_PEM=CLIENT_KEY.as_pem(private=True).decode(),
            SIGNING_ALG="ES256",
        ),
    )
    try:
        messages = []
        authorize_url = (await next_message(process))["authorize"]
        answer = await authorize_async(authorize_url, username=DEMO_USER[0], password=DEMO_USER[1])
        assert answer.code is not None, answer.redirect_url
        assert process.stdin is not None
        process.stdin.write(answer.code.encode() + b"\n")
        await process.stdin.drain()
        for _ in range(3):
            messages.append(await next_message(process))
        await asyncio.wait_for(process.wait(), STEP_TIMEOUT)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    stderr = (await process.stderr.read()).decode() if process.stderr else ""
    assert process.returncode == 0, stderr + world.deployment.logs()

    first, after_refresh, summary = messages
    for call in (first, after_refresh):
        assert call["isError"] is False, call
        assert call["whoami"]["subject"] == DEMO_USER[0]
        assert call["whoami"]["client_id"] == world.client_id
    assert summary == {"refreshed": True, "has_refresh_token": True}, "no second sign-in: the refresh worked"
    asked = parse_qs(urlsplit(authorize_url).query)
    assert asked["client_id"] == [world.client_id], "the SDK sent the document's URL as its client_id"
    assert world.documents.hits(world.jwks_uri) >= 1, "the authorization server never read the client's keys"


def code_for(world: World) -> tuple[str, str]:
    """A code for the document client, as its own flow would get it (the verifier with it)."""
    disc = oauth_flow.discover(world.deployment.mcp_url)
    verifier, challenge = oauth_flow.pkce_pair()
    url = oauth_flow.authorization_url(
        disc,
        world.client_id,
        REDIRECT_URI,
        scope="mcp:tools:read",
        resource=world.deployment.mcp_url,
        state=uuid.uuid4().hex,
        challenge=challenge,
    )
    answer = authorize(url)
    assert answer.code is not None, answer.redirect_url
    return answer.code, verifier


def assertion(world: World, key: ECKey) -> str:
    now = int(time.time())
    claims = {
        "iss": world.client_id,
        "sub": world.client_id,
        "aud": world.deployment.issuer,
        "iat": now,
        "exp": now + 60,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode({"alg": "ES256", "kid": key.kid}, claims, key)


@pytest.mark.parametrize("proof", ["none", "another-key", "a-secret"])
def test_a_stolen_code_of_a_key_client_is_worth_nothing_without_its_key(world: World, proof: str) -> None:
    code, verifier = code_for(world)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "redirect_uri": REDIRECT_URI,
        "resource": world.deployment.mcp_url,
        "client_id": world.client_id,
    }
    if proof == "another-key":
        form |= {"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion(world, OTHER_KEY)}
    elif proof == "a-secret":
        form["client_secret"] = "the document is public, so no secret can be the proof " + "x" * 10
    with oauth_flow.http() as http:
        refused = http.post(f"{world.deployment.issuer}/token", data=form)
        assert refused.status_code == 401, refused.text
        assert refused.json()["error"] == "invalid_client"
        # The code is still the client's: with its key, the exchange works.
        form.pop("client_secret", None)
        form |= {"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion(world, CLIENT_KEY)}
        granted = http.post(f"{world.deployment.issuer}/token", data=form)
    assert granted.status_code == 200, granted.text
    assert granted.json()["refresh_token"]
