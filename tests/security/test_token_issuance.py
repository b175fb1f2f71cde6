"""Who may get which token (issue 9, items 2 and 3), attacked over HTTP against real processes.

The attacks, as found at 8e585b0:
* the resource server's introspection credential bought a token with every scope at /token
  (client_credentials), in internal mode too, and `notes_add` worked with it;
* `POST /register {"grant_types": ["client_credentials"]}` returned a secret that bought a token
  for every scope with no user and no sign-in, also with sign-in delegated to an upstream provider;
* a machine client's subject was its client_id, so a machine client named like a user shared
  that user's notes.
Each runs in internal and external mode, on memory and on Redis (registered clients and notes
live in the store): internal-memory and external-redis.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from auth_server import crypto
from auth_server.models import Client
from shared.storage.redis import RedisStore
from tests.e2e.fixtures import EACH_MODE_AND_STORE
from tests.e2e.oauth_flow import discover, mint
from tests.e2e.servers import Deployment, build_deployment, free_port
from tests.fixtures.live_server import live_server
from tests.idp.provider import start_provider
from tests.resilience.cluster import modern_call, rpc_result, structured

# Real processes in each mode once and each store once (internal-memory, external-redis): the issuance
# policy is the authorization server's, the same in both apps, and registered clients and notes are the
# Store contract's.
PROCESS_DEPLOYMENTS = EACH_MODE_AND_STORE

EVERY_SCOPE = "mcp:tools:read mcp:resources:read mcp:prompts:read notes:read notes:write profile:read"
CALLBACK = "http://127.0.0.1:9/callback"

# Machine clients the operator configured: one named like the development user, one read-only.
DEMO_MACHINE = {"client_id": "demo", "client_secret": secrets.token_urlsafe(24)}
READER_MACHINE = {"client_id": "nightly-report", "client_secret": secrets.token_urlsafe(24)}
DEPLOYMENT_ENV = {
    "AUTH_CLIENTS": json.dumps(
        [
            {**DEMO_MACHINE, "grant_types": ["client_credentials"], "scope": "mcp:tools:read notes:write"},
            {**READER_MACHINE, "grant_types": ["client_credentials"], "scope": "notes:read"},
        ]
    ),
    "CIMD_ALLOW_LOOPBACK": "true",
}


def http() -> httpx2.Client:
    return httpx2.Client(timeout=15.0, trust_env=False, follow_redirects=False)


def token_request(
    deployment: Deployment, form: dict[str, str], auth: tuple[str, str] | None
) -> httpx2.Response:
    with http() as client:
        return client.post(
            f"{deployment.issuer}/token", data=form, auth=httpx2.BasicAuth(*auth) if auth else None
        )


def call_tool(deployment: Deployment, token: str, tool: str, **arguments: Any) -> httpx2.Response:
    body, headers = modern_call(tool, arguments, token)
    with http() as client:
        return client.post(deployment.mcp_url, json=body, headers=headers)


def tool_output(deployment: Deployment, token: str, tool: str, **arguments: Any) -> dict[str, Any]:
    return structured(rpc_result(call_tool(deployment, token, tool, **arguments)))


def assert_oauth_error(response: httpx2.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error, body
    assert "access_token" not in body


def machine_token(deployment: Deployment, machine: dict[str, str], **form: str) -> dict[str, Any]:
    response = token_request(
        deployment,
        {"grant_type": "client_credentials", **form},
        (machine["client_id"], machine["client_secret"]),
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# --- item 2: the introspection credential only introspects --------------------------------------


def test_the_introspection_credential_buys_no_token_with_any_grant(deployment: Deployment) -> None:
    credential = (deployment.introspection_client_id, deployment.introspection_client_secret)
    attempts = [
        {"grant_type": "client_credentials", "scope": "notes:write mcp:tools:read"},
        {"grant_type": "client_credentials"},
        {
            "grant_type": "authorization_code",
            "code": "x",
            "code_verifier": "y" * 43,
            "redirect_uri": CALLBACK,
        },
        {"grant_type": "refresh_token", "refresh_token": "x"},
    ]
    for form in attempts:
        response = token_request(deployment, form, credential)
        if deployment.mode == "internal":
            # No such client at all: internal mode's MCP server reads the Store, it never introspects.
            assert_oauth_error(response, 401, "invalid_client")
        else:
            assert_oauth_error(response, 400, "unauthorized_client")


def test_the_introspection_credential_exists_only_where_a_separate_mcp_server_introspects(
    deployment: Deployment,
) -> None:
    credential = httpx2.BasicAuth(deployment.introspection_client_id, deployment.introspection_client_secret)
    with http() as client:
        response = client.post(f"{deployment.issuer}/introspect", data={"token": "junk"}, auth=credential)
    if deployment.mode == "internal":
        assert_oauth_error(response, 401, "invalid_client")
    else:
        assert response.status_code == 200, response.text
        assert response.json() == {"active": False}


def test_the_introspection_credential_cannot_start_an_authorization(deployment: Deployment) -> None:
    params = {
        "response_type": "code",
        "client_id": deployment.introspection_client_id,
        "redirect_uri": CALLBACK,
        "code_challenge": "A" * 43,
        "code_challenge_method": "S256",
        "state": "s",
    }
    with http() as client:
        response = client.get(f"{deployment.issuer}/authorize", params=params)
    assert response.status_code == 400, response.text
    assert "location" not in response.headers


# --- item 3: machine clients are the operator's decision ----------------------------------------


def test_dynamic_registration_refuses_the_client_credentials_grant(deployment: Deployment) -> None:
    registration = discover(deployment.mcp_url).metadata["registration_endpoint"]
    bodies = [
        {"grant_types": ["client_credentials"]},
        {"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_post"},
        {
            "grant_types": ["authorization_code", "client_credentials"],
            "redirect_uris": [CALLBACK],
            "application_type": "native",
        },
    ]
    with http() as client:
        for body in bodies:
            response = client.post(registration, json=body)
            assert response.status_code == 400, response.text
            assert response.json()["error"] == "invalid_client_metadata"
            assert "client_secret" not in response.json()


def test_a_registered_confidential_client_gets_no_token_without_a_user(deployment: Deployment) -> None:
    registration = discover(deployment.mcp_url).metadata["registration_endpoint"]
    body = {"redirect_uris": [CALLBACK], "application_type": "native", "client_name": "attacker"}
    with http() as client:
        registered = client.post(registration, json=body).json()
    assert registered["client_secret"]  # confidential: it has a secret, and the secret works...
    credential = (registered["client_id"], registered["client_secret"])
    for scope in (EVERY_SCOPE, None):
        form = {"grant_type": "client_credentials", **({"scope": scope} if scope else {})}
        assert_oauth_error(token_request(deployment, form, credential), 400, "unauthorized_client")


REDIS_ONLY = [
    pytest.param(("internal", "redis"), id="internal-redis"),
    pytest.param(("external", "redis"), id="external-redis"),
]


@pytest.mark.parametrize("deployment", REDIS_ONLY, indirect=True)
def test_a_client_registered_for_client_credentials_before_the_fix_gets_no_token(
    deployment: Deployment,
) -> None:
    """A registration the old version accepted, still in Redis after the upgrade. (In memory,
    nothing registered survives the restart an upgrade is, so there the attack is gone with it.)"""
    secret = crypto.new_credential()
    legacy = Client(
        client_id=f"mcp-client-{uuid.uuid4().hex}",
        grant_types=("client_credentials",),
        response_types=(),
        token_endpoint_auth_method="client_secret_basic",
        client_secret_digest=crypto.digest(secret),
        application_type="web",
        source="dynamic",
    )
    _plant_client(deployment, legacy)
    form = {"grant_type": "client_credentials", "scope": EVERY_SCOPE}
    assert_oauth_error(
        token_request(deployment, form, (legacy.client_id, secret)), 400, "unauthorized_client"
    )
    # Even a record claiming to come from configuration (or to be a resource server) is held to
    # the rules of a registered client: only AUTH_CLIENTS makes machine clients.
    claims = {"source": "preregistered", "scope": EVERY_SCOPE, "may_introspect": True}
    _plant_client(deployment, legacy.model_copy(update=claims))
    assert_oauth_error(
        token_request(deployment, form, (legacy.client_id, secret)), 400, "unauthorized_client"
    )
    with http() as client:
        probe = client.post(
            f"{deployment.issuer}/introspect",
            data={"token": "t"},
            auth=httpx2.BasicAuth(legacy.client_id, secret),
        )
    assert_oauth_error(probe, 401, "invalid_client")


def _plant_client(deployment: Deployment, client: Client) -> None:
    async def plant() -> None:
        store = RedisStore.from_url(
            deployment.env["REDIS_URL"], key_prefix=deployment.env["REDIS_KEY_PREFIX"]
        )
        try:
            await store.set(f"auth:client:{client.client_id}", client.model_dump_json())
        finally:
            await store.close()

    asyncio.run(plant())


@pytest.fixture
def metadata_documents() -> Iterator[tuple[str, dict[str, dict[str, Any]]]]:
    """A host serving client ID metadata documents (the test fills `documents` by path)."""
    documents: dict[str, dict[str, Any]] = {}

    def app(_: str) -> Starlette:
        async def document(request: Request) -> JSONResponse:
            found = documents.get(request.url.path)
            return JSONResponse(found) if found else JSONResponse({}, status_code=404)

        return Starlette(routes=[Route("/{name}", document)])

    with live_server(app) as base_url:
        yield base_url, documents


def test_a_metadata_document_client_cannot_use_client_credentials(
    deployment: Deployment, metadata_documents: tuple[str, dict[str, dict[str, Any]]]
) -> None:
    base_url, documents = metadata_documents
    asking = f"{base_url}/machine.json"
    documents["/machine.json"] = {
        "client_id": asking,
        "client_name": "wants a machine token",
        "redirect_uris": [CALLBACK],
        "grant_types": ["authorization_code", "client_credentials"],
    }
    honest = f"{base_url}/app.json"
    documents["/app.json"] = {"client_id": honest, "client_name": "an app", "redirect_uris": [CALLBACK]}
    params = {
        "response_type": "code",
        "redirect_uri": CALLBACK,
        "code_challenge": "A" * 43,
        "code_challenge_method": "S256",
        "state": "s",
    }
    with http() as client:
        refused = client.get(f"{deployment.issuer}/authorize", params={**params, "client_id": asking})
        accepted = client.get(f"{deployment.issuer}/authorize", params={**params, "client_id": honest})
    assert refused.status_code == 400, refused.text
    assert "location" not in refused.headers
    assert accepted.status_code in (302, 303), accepted.text  # the document host was reachable
    for client_id in (honest, asking):
        form = {"grant_type": "client_credentials", "client_id": client_id, "scope": EVERY_SCOPE}
        response = token_request(deployment, form, None)
        assert response.status_code in (400, 401), response.text
        assert response.json()["error"] in ("unauthorized_client", "invalid_client")
        assert "access_token" not in response.json()
    form = {"grant_type": "client_credentials", "client_id": honest}
    assert_oauth_error(token_request(deployment, form, None), 400, "unauthorized_client")


def test_a_machine_clients_token_never_exceeds_its_configured_scope(deployment: Deployment) -> None:
    assert machine_token(deployment, READER_MACHINE)["scope"] == "notes:read"
    assert machine_token(deployment, READER_MACHINE, scope="notes:read")["scope"] == "notes:read"
    for outside in ("notes:write", "mcp:tools:read"):
        response = token_request(
            deployment,
            {"grant_type": "client_credentials", "scope": outside},
            (READER_MACHINE["client_id"], READER_MACHINE["client_secret"]),
        )
        assert_oauth_error(response, 400, "invalid_scope")
    # Asking for everything gets the overlap with what was configured (RFC 6749 section 3.3), no more.
    assert machine_token(deployment, READER_MACHINE, scope=EVERY_SCOPE)["scope"] == "notes:read"
    token = machine_token(deployment, READER_MACHINE)["access_token"]
    assert call_tool(deployment, token, "notes_add", text="no").status_code == 403


def test_a_machine_client_named_like_a_user_is_not_that_user(deployment: Deployment) -> None:
    user = mint(deployment.mcp_url, scope="mcp:tools:read notes:write").tokens.access_token
    note = f"demo's private note {uuid.uuid4().hex}"
    tool_output(deployment, user, "notes_add", text=note)

    machine = machine_token(deployment, DEMO_MACHINE)["access_token"]
    identity = tool_output(deployment, machine, "whoami")
    assert identity["subject"] == "client:demo"
    assert identity["client_id"] == "demo"
    assert tool_output(deployment, user, "whoami")["subject"] == "demo"
    seen_by_machine = tool_output(deployment, machine, "notes_list")
    assert note not in json.dumps(seen_by_machine)
    assert seen_by_machine["owner"] != tool_output(deployment, user, "notes_list")["owner"]


def test_a_machine_client_without_a_configured_scope_stops_start_up(
    start_deployment: Any,
) -> None:
    entry = {
        "client_id": "job",
        "client_secret": secrets.token_urlsafe(24),
        "grant_types": ["client_credentials"],
    }
    with pytest.raises(RuntimeError, match="needs an explicit scope"):
        start_deployment("internal", "memory", {"AUTH_CLIENTS": json.dumps([entry])})


def test_a_resource_server_credential_configured_with_grants_stops_start_up(start_deployment: Any) -> None:
    entry = {
        "client_id": "other-rs",
        "client_secret": secrets.token_urlsafe(24),
        "grant_types": ["client_credentials"],
        "scope": "notes:read",
        "may_introspect": True,
    }
    with pytest.raises(RuntimeError, match="only introspects"):
        start_deployment("internal", "memory", {"AUTH_CLIENTS": json.dumps([entry])})


def test_with_federated_login_registration_still_buys_no_machine_token_and_machines_stay_apart(
    tmp_path: Path,
) -> None:
    """Sign-in delegated to a real OpenID provider (oidc-provider): the attack of item 3 again,
    and a configured machine client named like the provider's user is not that user."""
    idp_port = free_port()
    upstream_secret = secrets.token_urlsafe(24)
    machine = {"client_id": "alice", "client_secret": secrets.token_urlsafe(24)}
    federated = build_deployment(
        "internal",
        "memory",
        tmp_path / "federated",
        env={
            "UPSTREAM_OIDC_ISSUER": f"http://127.0.0.1:{idp_port}",
            "UPSTREAM_OIDC_CLIENT_ID": "mcp-reference-as",
            "UPSTREAM_OIDC_CLIENT_SECRET": upstream_secret,
            "AUTH_CLIENTS": json.dumps(
                [{**machine, "grant_types": ["client_credentials"], "scope": "mcp:tools:read notes:read"}]
            ),
        },
    )
    provider = start_provider(
        tmp_path / "provider",
        idp_port,
        resources={},
        clients=[
            {
                "client_id": "mcp-reference-as",
                "client_secret": upstream_secret,
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
                "redirect_uris": [federated.base_url + "/login/callback"],
                "token_endpoint_auth_method": "client_secret_basic",
            }
        ],
    )
    try:
        federated.start()
        registration = discover(federated.mcp_url).metadata["registration_endpoint"]
        with http() as client:
            refused = client.post(registration, json={"grant_types": ["client_credentials"]})
            confidential = client.post(
                registration, json={"redirect_uris": [CALLBACK], "application_type": "native"}
            ).json()
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"] == "invalid_client_metadata"
        form = {"grant_type": "client_credentials", "scope": EVERY_SCOPE}
        credential = (confidential["client_id"], confidential["client_secret"])
        assert_oauth_error(token_request(federated, form, credential), 400, "unauthorized_client")

        alice = mint(federated.mcp_url, user=("alice", "alice-password")).tokens.access_token
        machine_alice = machine_token(federated, machine)["access_token"]
        user_subject = tool_output(federated, alice, "whoami")["subject"]
        machine_subject = tool_output(federated, machine_alice, "whoami")["subject"]
        assert user_subject == f"{provider.issuer}#alice"
        assert machine_subject == "client:alice"
    finally:
        federated.stop()
        provider.stop()
