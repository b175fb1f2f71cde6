"""External mode picks the check per token (TOKEN_VALIDATION, shared/validators/external.py).

The regression this guards: `AUTH_SERVER_URL=<an OpenID provider issuing JWTs> make dev-mcp`, with
no other setting, answered 503 to every request and logged the provider's 401s to introspection,
because the MCP server introspected every token with a credential only the bundled authorization
server knows. Here that exact configuration (`python -m mcp_server`, AUTH_SERVER_URL and nothing
about tokens or introspection) runs against oidc-provider issuing RFC 9068 JWTs: the MCP SDK's
client signs in at the provider and its JWT is checked locally; an opaque token is refused with
401, not 503; the start-up log says which checks apply and that the server has no introspection
credential there (INTROSPECTION_CLIENT_SECRET unset). TOKEN_VALIDATION=jwt never introspects;
TOKEN_VALIDATION=introspection introspects JWTs too (oidc-provider cannot introspect its own
JWTs, so they are refused: the provider's word, not a local check).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest

from tests.e2e.sdk_client import REVISIONS, HeadlessUser, Revision, make_sdk_client, structured
from tests.e2e.servers import Deployment, free_port
from tests.idp.conftest import mcp_server_alone
from tests.idp.flows import provider_tokens
from tests.idp.provider import IdentityProvider, start_provider

RS_CLIENT_ID = "rs-validation-choice"
LOG_WAIT = 20.0


@dataclass
class Choices:
    idp: IdentityProvider
    plain: Deployment  # AUTH_SERVER_URL only: what `make dev-mcp` runs for a user
    jwt_only: Deployment  # TOKEN_VALIDATION=jwt
    introspect_all: Deployment  # TOKEN_VALIDATION=introspection, with a credential at the provider

    def deployments(self) -> list[Deployment]:
        return [self.plain, self.jwt_only, self.introspect_all]


@pytest.fixture(scope="module")
def choices(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Choices]:
    root = Path(tmp_path_factory.mktemp("idp-choice"))
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    secret = secrets.token_urlsafe(24)
    plain = mcp_server_alone(root / "plain", {"AUTH_SERVER_URL": issuer})
    jwt_only = mcp_server_alone(root / "jwt", {"AUTH_SERVER_URL": issuer, "TOKEN_VALIDATION": "jwt"})
    introspect_all = mcp_server_alone(
        root / "introspection",
        {
            "AUTH_SERVER_URL": issuer,
            "TOKEN_VALIDATION": "introspection",
            "INTROSPECTION_CLIENT_ID": RS_CLIENT_ID,
            "INTROSPECTION_CLIENT_SECRET": secret,
        },
    )
    idp = start_provider(
        root / "provider",
        port,
        resources={d.mcp_url: {"format": "jwt", "ttl": 600} for d in (plain, jwt_only, introspect_all)},
        clients=[
            {
                "client_id": RS_CLIENT_ID,
                "client_secret": secret,
                "grant_types": [],
                "response_types": [],
                "redirect_uris": [],
                "token_endpoint_auth_method": "client_secret_basic",
            }
        ],
        rfc8414=False,
    )
    world = Choices(idp, plain, jwt_only, introspect_all)
    try:
        for deployment in world.deployments():
            deployment.start()
        yield world
    finally:
        for deployment in world.deployments():
            deployment.stop()
        idp.stop()


def wait_for_log(deployment: Deployment, text: str) -> str:
    deadline = time.monotonic() + LOG_WAIT
    while True:
        logs = "\n".join(process.log_path.read_text(errors="replace") for process in deployment.processes)
        if text in logs:
            return logs
        assert time.monotonic() < deadline, f"{text!r} never logged:\n{logs[-3000:]}"
        time.sleep(0.1)


def whoami(deployment: Deployment, token: str) -> httpx2.Response:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {
            "name": "whoami",
            "arguments": {},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": {"name": "tests", "version": "1"},
            },
        },
    }
    headers = {
        "accept": "application/json, text/event-stream",
        "content-type": "application/json",
        "mcp-protocol-version": "2026-07-28",
        "mcp-method": "tools/call",
        "mcp-name": "whoami",
        "authorization": f"Bearer {token}",
    }
    with httpx2.Client(timeout=10.0, trust_env=False) as http:
        return http.post(deployment.mcp_url, json=body, headers=headers)


@pytest.mark.parametrize("revision", REVISIONS)
async def test_with_only_auth_server_url_the_providers_jwts_are_checked_locally(
    choices: Choices, revision: Revision
) -> None:
    # The start-up probe of the introspection credential (after the validation line) calls the
    # provider's introspection endpoint once: count only after it has answered.
    wait_for_log(choices.plain, "this server has no introspection credential at")
    before = choices.idp.stats()["introspection"]
    sdk = make_sdk_client(choices.plain.mcp_url, HeadlessUser("alice", "alice-password"))
    async with sdk.connect(revision) as client:
        identity = structured(await client.call_tool("whoami", {}))
        again = structured(await client.call_tool("whoami", {}))

    assert identity["subject"] == again["subject"] == "alice"
    assert identity["issuer"] == choices.idp.issuer
    assert sdk.storage.tokens is not None
    assert sdk.storage.tokens.access_token.count(".") == 2
    assert choices.idp.stats()["introspection"] == before, "a JWT was sent to introspection"
    assert 503 not in sdk.traffic.statuses_for(choices.plain.mcp_url)


def test_the_start_log_says_what_is_checked_and_that_there_is_no_introspection_credential(
    choices: Choices,
) -> None:
    logs = wait_for_log(choices.plain, "this server has no introspection credential at")
    jwks_uri = choices.idp.metadata()["jwks_uri"]
    endpoint = choices.idp.metadata()["introspection_endpoint"]
    assert f"JWTs locally with the keys at {jwks_uri}" in logs
    assert f"other tokens by introspection at {endpoint}" in logs
    assert "INTROSPECTION_CLIENT_ID=mcp-resource-server" in logs
    assert "opaque tokens are answered 401" in logs
    assert "checked: a JWT locally when it publishes its keys, any other token by introspection" in logs


def test_an_opaque_token_the_server_cannot_introspect_is_401_not_503(choices: Choices) -> None:
    wait_for_log(choices.plain, "this server has no introspection credential at")
    response = whoami(choices.plain, secrets.token_urlsafe(32))

    assert response.status_code == 401, response.text
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_jwt_only_never_introspects_and_refuses_opaque_tokens(choices: Choices) -> None:
    logs = wait_for_log(choices.jwt_only, "token validation (TOKEN_VALIDATION=jwt)")
    assert "by introspection" not in logs
    _, _, tokens = provider_tokens(choices.idp, choices.jwt_only.mcp_url)
    before = choices.idp.stats()["introspection"]
    accepted = whoami(choices.jwt_only, tokens.access_token)
    refused = whoami(choices.jwt_only, secrets.token_urlsafe(32))

    assert accepted.status_code == 200, accepted.text
    assert "alice" in accepted.text
    assert refused.status_code == 401
    assert choices.idp.stats()["introspection"] == before


def test_introspection_for_every_token_asks_the_provider_about_jwts_too(choices: Choices) -> None:
    logs = wait_for_log(choices.introspect_all, "token validation (TOKEN_VALIDATION=introspection)")
    assert "JWTs locally" not in logs
    _, _, tokens = provider_tokens(choices.idp, choices.introspect_all.mcp_url)
    before = choices.idp.stats()["introspection"]
    response = whoami(choices.introspect_all, tokens.access_token)

    # oidc-provider answers unsupported_token_type for its own JWTs: inactive, so 401.
    assert response.status_code == 401, response.text
    assert choices.idp.stats()["introspection"] == before + 1
