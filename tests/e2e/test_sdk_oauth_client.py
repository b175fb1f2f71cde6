"""The MCP Python SDK's OAuth client against the real servers, headless, in both modes and stores.

Discovery, registration (DCR and client ID metadata documents), PKCE, the token exchange,
tools/list, whoami, per-user notes, step-up from read to write, refresh after expiry and
revocation - each through `OAuthClientProvider` exactly as an application would use it, with
the login and consent pages driven by `HeadlessUser`. Both protocol revisions where the SDK lets
a client choose (the 2025-11-25 handshake, and 2026-07-28).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import anyio
import pytest

from auth_server.users import scrypt_hash
from tests.e2e import oauth_flow
from tests.e2e.fixtures import EACH_MODE_AND_STORE
from tests.e2e.sdk_client import (
    REDIRECT_URI,
    REVISIONS,
    HeadlessUser,
    Revision,
    make_sdk_client,
    structured,
    subject_of,
    text_of,
)
from tests.e2e.servers import Deployment, build_deployment

PASSWORDS = {"demo": "demo", "alice": "alice-password", "bob": "bob-password"}
INTROSPECTION_CACHE_TTL = 2
DEPLOYMENT_ENV = {
    # n=2**10 keeps logins fast in tests; the hash format is the production one.
    "AUTH_USERS": json.dumps({name: scrypt_hash(pw, n=2**10) for name, pw in PASSWORDS.items()}),
    "CIMD_ALLOW_LOOPBACK": "true",
    "INTROSPECTION_CACHE_TTL": str(INTROSPECTION_CACHE_TTL),
    "INTROSPECTION_NEGATIVE_TTL": "1",
}
SHORT_TTL = 3
NOTES_TOOLS = {"whoami", "notes_list", "notes_add", "notes_delete"}


def user(name: str) -> HeadlessUser:
    return HeadlessUser(name, PASSWORDS[name])


@pytest.fixture(scope="module", params=EACH_MODE_AND_STORE)
def short_ttl_deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """Like `deployment`, with access tokens that expire after SHORT_TTL seconds."""
    mode, store = request.param
    redis_url = request.getfixturevalue("e2e_redis").url if store == "redis" else None
    running = build_deployment(
        mode,
        store,
        Path(tmp_path_factory.mktemp(f"short-ttl-{mode}-{store}")),
        redis_url=redis_url,
        env={**DEPLOYMENT_ENV, "ACCESS_TOKEN_TTL": str(SHORT_TTL)},
    ).start()
    try:
        yield running
    finally:
        running.stop()


class MetadataDocuments:
    """A loopback web server hosting client ID metadata documents at /clients/<name>.json.

    Every path gets a document whose client_id is its own URL (as the CIMD draft requires), so
    each test can use a fresh URL that no authorization server has cached. Requests are recorded.
    """

    def __init__(self) -> None:
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                if not self.path.startswith("/clients/"):
                    self.send_error(404)
                    return
                body = json.dumps(
                    {
                        "client_id": f"{outer.base_url}{self.path}",
                        "client_name": "SDK e2e client (metadata document)",
                        "redirect_uris": [REDIRECT_URI],
                        "grant_types": ["authorization_code", "refresh_token"],
                        "response_types": ["code"],
                        "token_endpoint_auth_method": "none",
                    }
                ).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def new_url(self) -> str:
        return f"{self.base_url}/clients/{uuid.uuid4().hex}.json"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def metadata_documents() -> Iterator[MetadataDocuments]:
    docs = MetadataDocuments()
    yield docs
    docs.close()


@pytest.mark.parametrize("deployment", EACH_MODE_AND_STORE, indirect=True)
@pytest.mark.parametrize("revision", REVISIONS)
async def test_sdk_client_discovers_registers_by_dcr_and_calls_whoami_as_the_demo_user(
    deployment: Deployment, revision: Revision
) -> None:
    sdk = make_sdk_client(deployment.mcp_url)
    async with sdk.connect(revision) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert {"whoami", "notes_list"} <= tools, tools
        assert subject_of(await client.call_tool("whoami", {})) == "demo"

    assert sdk.user.logins == 1
    asked = sdk.user.requested()
    assert asked["code_challenge_method"] == "S256"
    assert len(asked["code_challenge"]) == 43
    assert asked["resource"] == deployment.mcp_url
    assert "notes:write" not in asked["scope"].split(), "writing should be a step-up, not the default"
    assert sdk.user.responses[-1].iss == deployment.issuer
    # Discovery, then dynamic registration, then the code exchange - all answered as they should.
    assert 200 in sdk.traffic.statuses_for("/.well-known/oauth-protected-resource")
    assert 200 in sdk.traffic.statuses_for("/.well-known/oauth-authorization-server")
    assert sdk.traffic.statuses_for("/register") == [201]
    assert sdk.traffic.statuses_for("/token") == [200]
    assert sdk.storage.client_info is not None
    assert not sdk.storage.client_info.client_id.startswith("http")
    assert sdk.storage.tokens is not None
    assert sdk.storage.tokens.refresh_token


@pytest.mark.parametrize("deployment", EACH_MODE_AND_STORE, indirect=True)
@pytest.mark.parametrize("revision", REVISIONS)
async def test_sdk_client_registers_with_a_client_id_metadata_document_instead_of_dcr(
    deployment: Deployment, revision: Revision, metadata_documents: MetadataDocuments
) -> None:
    document_url = metadata_documents.new_url()
    sdk = make_sdk_client(deployment.mcp_url, client_metadata_url=document_url)
    async with sdk.connect(revision) as client:
        assert subject_of(await client.call_tool("whoami", {})) == "demo"

    assert sdk.user.requested()["client_id"] == document_url
    assert sdk.storage.client_info is not None
    assert sdk.storage.client_info.client_id == document_url
    assert sdk.traffic.statuses_for("/register") == [], "no dynamic registration with CIMD"
    assert sdk.traffic.statuses_for("/token") == [200]
    fetched = document_url.removeprefix(metadata_documents.base_url)
    assert fetched in metadata_documents.requests, "the authorization server never fetched the document"


@pytest.mark.parametrize("deployment", EACH_MODE_AND_STORE, indirect=True)
@pytest.mark.parametrize("revision", REVISIONS)
async def test_step_up_from_read_to_write_reauthorizes_once_and_the_write_succeeds(
    deployment: Deployment, revision: Revision
) -> None:
    sdk = make_sdk_client(deployment.mcp_url)
    note = f"step-up note {uuid.uuid4().hex}"
    async with sdk.connect(revision) as client:
        listed = await client.call_tool("notes_list", {})
        assert not listed.is_error, text_of(listed)
        assert sdk.user.logins == 1
        first_scope = set(sdk.user.requested(0)["scope"].split())
        assert "notes:write" not in first_scope

        added = await client.call_tool("notes_add", {"text": note})
        assert not added.is_error, text_of(added)

        listed = await client.call_tool("notes_list", {})
        assert note in text_of(listed)

    # The write was refused once with 403 insufficient_scope naming notes:write, the SDK asked the
    # person again for the union of scopes, and nothing else needed a new login.
    challenges = [h for status, h in sdk.traffic.challenges if status == 403]
    assert challenges, f"no 403 seen: {sdk.traffic.exchanges}"
    params = oauth_flow.parse_challenge(challenges[0])
    assert params.get("error") == "insufficient_scope"
    assert "notes:write" in params.get("scope", "").split()
    assert sdk.user.logins == 2
    second_scope = set(sdk.user.requested(1)["scope"].split())
    assert "notes:write" in second_scope
    assert first_scope <= second_scope, "step-up dropped scopes granted before"
    assert sdk.storage.tokens is not None
    assert "notes:write" in (sdk.storage.tokens.scope or "").split()


@pytest.mark.parametrize("deployment", EACH_MODE_AND_STORE, indirect=True)
@pytest.mark.parametrize("revision", REVISIONS)
async def test_user_a_never_sees_the_notes_of_user_b(deployment: Deployment, revision: Revision) -> None:
    alice_note = f"alice's secret {uuid.uuid4().hex}"
    bob_note = f"bob's secret {uuid.uuid4().hex}"
    alice = make_sdk_client(deployment.mcp_url, user("alice"))
    bob = make_sdk_client(deployment.mcp_url, user("bob"))

    async with alice.connect(revision) as alice_client, bob.connect(revision) as bob_client:
        assert subject_of(await alice_client.call_tool("whoami", {})) == "alice"
        assert subject_of(await bob_client.call_tool("whoami", {})) == "bob"

        added = await alice_client.call_tool("notes_add", {"text": alice_note})
        assert not added.is_error, text_of(added)
        alice_note_id = structured(added)["id"]
        added = await bob_client.call_tool("notes_add", {"text": bob_note})
        assert not added.is_error, text_of(added)

        alice_sees = structured(await alice_client.call_tool("notes_list", {}))
        bob_sees = structured(await bob_client.call_tool("notes_list", {}))

        # Bob cannot delete Alice's note even knowing its id; Alice can.
        attempt = await bob_client.call_tool("notes_delete", {"note_id": alice_note_id})
        assert structured(attempt)["deleted"] is False
        assert alice_note in text_of(await alice_client.call_tool("notes_list", {}))
        removed = await alice_client.call_tool("notes_delete", {"note_id": alice_note_id})
        assert structured(removed)["deleted"] is True
        assert alice_note not in text_of(await alice_client.call_tool("notes_list", {}))

    assert alice_sees["owner"] == "alice"
    assert bob_sees["owner"] == "bob"
    alice_texts = [n["text"] for n in alice_sees["notes"]]
    bob_texts = [n["text"] for n in bob_sees["notes"]]
    assert alice_note in alice_texts
    assert bob_note not in alice_texts
    assert bob_note in bob_texts
    assert alice_note not in bob_texts


async def test_sdk_client_refreshes_after_the_access_token_expires_without_a_new_login(
    short_ttl_deployment: Deployment,
) -> None:
    deployment = short_ttl_deployment
    sdk = make_sdk_client(deployment.mcp_url)
    async with sdk.connect("2025-11-25") as legacy, sdk.connect("2026-07-28") as modern:
        assert subject_of(await legacy.call_tool("whoami", {})) == "demo"
        assert subject_of(await modern.call_tool("whoami", {})) == "demo"
        assert sdk.storage.tokens is not None
        expired = sdk.storage.tokens
        assert expired.expires_in is not None
        assert expired.expires_in <= SHORT_TTL

        # A real wait, the one thing under test: the SDK decides by its own clock (no way to move
        # it) that its token expired and refreshes it; polling the server until it refuses the
        # token is not enough, the SDK would then send it, get a 401 and sign in again instead.
        await anyio.sleep(SHORT_TTL + 0.5)

        # The server itself refuses the old token now (so the refresh below is needed, not cosmetic).
        stale = await anyio.to_thread.run_sync(
            oauth_flow.initialize, deployment.mcp_url, expired.access_token
        )
        assert stale.status_code == 401, stale.text
        assert oauth_flow.parse_challenge(stale.headers["www-authenticate"]).get("error") == "invalid_token"

        # Both the open 2025 session and the stateless 2026 client carry on, on a refreshed token.
        assert subject_of(await legacy.call_tool("whoami", {})) == "demo"
        assert subject_of(await modern.call_tool("whoami", {})) == "demo"

    assert sdk.user.logins == 1, "expiry should be handled by refresh, not by a new login"
    fresh = sdk.storage.tokens
    assert fresh is not None
    assert fresh.access_token != expired.access_token
    assert fresh.refresh_token
    assert fresh.refresh_token != expired.refresh_token, "refresh token not rotated"
    assert sdk.traffic.statuses_for("/token").count(200) >= 2


@pytest.mark.parametrize("deployment", EACH_MODE_AND_STORE, indirect=True)
async def test_revoked_access_token_stops_working_within_the_documented_bound(deployment: Deployment) -> None:
    sdk = make_sdk_client(deployment.mcp_url)
    async with sdk.connect("2026-07-28") as client:
        assert subject_of(await client.call_tool("whoami", {})) == "demo"
    assert sdk.storage.tokens is not None
    assert sdk.storage.client_info is not None
    token = sdk.storage.tokens.access_token

    def revoke_and_wait() -> float:  # seconds until the server refused the revoked token
        # Warm any introspection cache first, so the bound measured is the cache's.
        ok = oauth_flow.initialize(deployment.mcp_url, token)
        assert ok.status_code == 200, ok.text
        disc = oauth_flow.discover(deployment.mcp_url)
        assert sdk.storage.client_info is not None
        oauth_flow.revoke(disc, sdk.storage.client_info.client_id, token, "access_token")
        revoked_at = time.monotonic()
        # Internal mode: the very next request must be refused. External: within the cache bound
        # (plus a second for the polling itself).
        bound = -1.0 if deployment.mode == "internal" else INTROSPECTION_CACHE_TTL + 1.0
        while True:
            response = oauth_flow.initialize(deployment.mcp_url, token)
            elapsed = time.monotonic() - revoked_at
            if response.status_code == 401:
                params = oauth_flow.parse_challenge(response.headers["www-authenticate"])
                assert params.get("error") == "invalid_token", response.headers["www-authenticate"]
                return elapsed
            assert response.status_code == 200, response.text
            assert elapsed <= bound, f"revoked token still accepted {elapsed:.2f}s after revocation"
            time.sleep(0.1)

    await anyio.to_thread.run_sync(revoke_and_wait)

    # The client holding the revoked token recovers by authorizing again.
    async with sdk.connect("2026-07-28") as client:
        assert subject_of(await client.call_tool("whoami", {})) == "demo"
    assert sdk.user.logins == 2


@pytest.mark.parametrize("deployment", EACH_MODE_AND_STORE, indirect=True)
async def test_revoking_the_refresh_token_ends_the_grant(deployment: Deployment) -> None:
    sdk = make_sdk_client(deployment.mcp_url)
    async with sdk.connect("2026-07-28") as client:
        assert subject_of(await client.call_tool("whoami", {})) == "demo"
    tokens, info = sdk.storage.tokens, sdk.storage.client_info
    assert tokens is not None
    assert tokens.refresh_token
    assert info is not None

    def revoke_then_refresh() -> int:
        disc = oauth_flow.discover(deployment.mcp_url)
        oauth_flow.revoke(disc, info.client_id, tokens.refresh_token or "", "refresh_token")
        with oauth_flow.http() as http:
            response = http.post(
                disc.metadata["token_endpoint"],
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": tokens.refresh_token or "",
                    "client_id": info.client_id,
                },
            )
        assert response.json().get("error") == "invalid_grant", response.text
        return response.status_code

    assert await anyio.to_thread.run_sync(revoke_then_refresh) == 400
