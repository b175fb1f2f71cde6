"""Attacks on what issue 14 added: accepted audiences and issuers, the API-key header, tenants.

1. Another deployment's token. In a Scalekit-shaped environment every resource shares the keys
   and the `iss` (the environment URL); only the audience (the resource ID) tells deployments
   apart. A genuine token another MCP server of the same environment got, through the real flow
   at oidc-provider, is replayed here: refused, while the same flow for our resource works.
   Forgeries close to our resource ID, or naming the accepted issuer but signed by another key,
   are refused too.
2. The tenant cache. A principal tries to be served another's tenant record: an API key
   configured for "alice" against a token of the provider's "alice" (same subject, no issuer vs
   an issuer), either first. Anonymous callers try to make the server look up or store anything.
3. The API-key header. A key smuggled two ways (each way a different key, either order) is 400,
   never "whichever came first"; the header's value never reaches a log line.
"""

from __future__ import annotations

import base64
import json
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest

from mcp_server.tenants import Tenant
from shared.validation import Principal
from tests.e2e.servers import Deployment, free_port
from tests.idp.conftest import mcp_server_alone
from tests.idp.flows import MCP_SCOPE, provider_tokens
from tests.idp.provider import IdentityProvider, Mount, new_signing_key, start_provider
from tests.integration.rs.conftest import (
    API_KEYS,
    MODERN,
    Mcp,
    StartRs,
    initialize_body,
    legacy_headers,
    start_rs,
)
from tests.resilience.cluster import modern_call

__all__ = ["start_rs"]  # fixture: in-process MCP servers with a small AS (tests/integration/rs)

OURS, THEIRS = "res_200000000001", "res_200000000002"
THEIR_URL = "https://their-deployment.example/mcp"


# --- 1. another deployment's token --------------------------------------------------------------
@dataclass
class Environment:
    idp: IdentityProvider
    ours: Deployment

    def issuer_of(self, resource_id: str) -> str:
        return f"{self.idp.issuer}/resources/{resource_id}"


@pytest.fixture(scope="module")
def environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Environment]:
    root: Path = tmp_path_factory.mktemp("provider-attacks")
    port = free_port()
    env_url = f"http://127.0.0.1:{port}"
    ours = mcp_server_alone(
        root / "ours",
        {
            "AUTH_SERVER_URL": f"{env_url}/resources/{OURS}",
            "TOKEN_FORMAT": "jwt",
            "ACCEPTED_AUDIENCES": json.dumps([OURS]),
            "ACCEPTED_ISSUERS": json.dumps([env_url]),
        },
    )

    def mount(resource_id: str, resource: str, audience: str | list[str]) -> Mount:
        return Mount(
            f"/resources/{resource_id}",
            {resource: {"format": "jwt", "audience": audience}},
            access_token_issuer=env_url,
            jwks_at_root=True,
            openid_discovery=False,
        )

    idp = start_provider(
        root / "provider",
        port,
        mounts=[mount(OURS, ours.mcp_url, OURS), mount(THEIRS, THEIR_URL, [THEIR_URL, THEIRS])],
    )
    try:
        ours.start()
        yield Environment(idp, ours)
    finally:
        ours.stop()
        idp.stop()


def whoami(deployment: Deployment, token: str) -> httpx2.Response:
    body, headers = modern_call("whoami", {}, token)
    with httpx2.Client(timeout=15.0, trust_env=False) as client:
        return client.post(deployment.mcp_url, json=body, headers=headers)


def claims_of(token: str) -> dict[str, object]:
    encoded = token.split(".")[1]
    claims: dict[str, object] = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    return claims


def assert_not_for_us(response: httpx2.Response) -> None:
    assert response.status_code == 401, response.text
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert response.json()["error_description"] == "The access token was not issued for this resource"


def test_a_genuine_token_of_another_deployment_in_the_same_environment_is_refused(
    environment: Environment,
) -> None:
    _, _, theirs = provider_tokens(environment.idp, THEIR_URL, issuer=environment.issuer_of(THEIRS))
    _, _, ours = provider_tokens(
        environment.idp, environment.ours.mcp_url, issuer=environment.issuer_of(OURS)
    )
    # Same keys, same iss: everything but the audience matches what we accept.
    claims = claims_of(theirs.access_token)
    assert claims["iss"] == environment.idp.issuer
    assert claims["aud"] == [THEIR_URL, THEIRS]
    assert_not_for_us(whoami(environment.ours, theirs.access_token))
    accepted = whoami(environment.ours, ours.access_token)
    assert accepted.status_code == 200, accepted.text


def test_forgeries_near_our_resource_id_or_under_the_accepted_issuer_are_refused(
    environment: Environment,
) -> None:
    idp = environment.idp
    for audience in (OURS + "0", OURS[:-1], OURS.upper(), f" {OURS}", [THEIRS, THEIR_URL]):
        forged = idp.sign(idp.claims("alice", audience, MCP_SCOPE))  # type: ignore[arg-type]
        assert_not_for_us(whoami(environment.ours, forged))
    stranger = new_signing_key(idp.key.kid or "idp-key-1")  # same kid, another key
    forged = idp.sign(idp.claims("alice", OURS, MCP_SCOPE), key=stranger)
    response = whoami(environment.ours, forged)
    assert response.status_code == 401
    assert response.json()["error_description"] == "The access token is invalid"


# --- 2. the tenant cache ------------------------------------------------------------------------
class RecordingLookup:
    """A fork's lookup that names the tenant after exactly who asked."""

    def __init__(self) -> None:
        self.calls: Counter[tuple[str | None, str]] = Counter()

    async def __call__(self, principal: Principal) -> Tenant:
        self.calls[(principal.issuer, principal.subject)] += 1
        return Tenant(
            id=f"{principal.issuer}|{principal.subject}", name=principal.subject, plan="x", note_limit=5
        )


@pytest.mark.parametrize("first", ["api_key", "token"])
async def test_the_same_subject_from_two_sources_never_shares_a_tenant_record(
    start_rs: StartRs, first: str
) -> None:
    lookup = RecordingLookup()
    rs = await start_rs("jwt", tenant_lookup=lookup)
    mcp = Mcp(rs.http, MODERN)
    credentials = {"api_key": API_KEYS["alice"], "token": await rs.token("alice")}
    expected = {"api_key": "None|api-key:alice", "token": f"{rs.authority.issuer}|alice"}
    order = [first, *(name for name in credentials if name != first)]
    for name in [*order, *order]:
        listed = (await mcp.call_tool("notes_list", credentials[name]))["structuredContent"]
        assert listed["tenant"] == expected[name], name
    assert lookup.calls == {(None, "api-key:alice"): 1, (rs.authority.issuer, "alice"): 1}


async def test_callers_who_are_not_authenticated_cause_no_lookup_and_no_record(start_rs: StartRs) -> None:
    lookup = RecordingLookup()
    rs = await start_rs("introspection", tenant_lookup=lookup)
    mcp = Mcp(rs.http, MODERN)
    expired = await rs.token("alice", exp=1)
    foreign = await rs.token("alice", aud="https://elsewhere.example/mcp")
    for token in (None, "junk-" * 8, expired, foreign, API_KEYS["alice"] + "x"):
        response = await mcp.post("tools/call", {"name": "whoami", "arguments": {}}, token)
        assert response.status_code == 401, response.text
    assert lookup.calls == {}
    control = await mcp.post("tools/call", {"name": "whoami", "arguments": {}}, await rs.token("alice"))
    assert control.status_code == 200
    assert lookup.calls == {(rs.authority.issuer, "alice"): 1}


# --- 3. the API-key header ------------------------------------------------------------------------
HEADER = "x-scope3-api-key"


@pytest.mark.parametrize("kind", ["jwt", "internal"])
async def test_two_different_keys_sent_two_ways_are_400_in_either_order(start_rs: StartRs, kind: str) -> None:
    rs = await start_rs(kind, api_key_header=HEADER)
    alice, bob = API_KEYS["alice"], API_KEYS["bob"]
    base = [("accept", "application/json, text/event-stream"), ("content-type", "application/json")]
    for smuggled in (
        [("authorization", f"Bearer {alice}"), (HEADER, bob)],
        [(HEADER, bob), ("authorization", f"Bearer {alice}")],
        [(HEADER, alice), (HEADER.upper(), bob)],
    ):
        response = await rs.http.post("/mcp", json=initialize_body(), headers=[*base, *smuggled])
        assert response.status_code == 400, (smuggled, response.text)
        assert response.json()["error"] == "invalid_request"


async def test_the_chosen_headers_value_never_reaches_a_log_line(
    start_rs: StartRs, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    rs = await start_rs("jwt", api_key_header=HEADER)
    guess = "guessed-key-0123456789abcdef"
    for value in (API_KEYS["alice"], guess):
        await rs.http.post("/mcp", json=initialize_body(), headers={**legacy_headers(None), HEADER: value})
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "/mcp" in logged, "the requests were logged at all"
    assert API_KEYS["alice"] not in logged
    assert guess not in logged
