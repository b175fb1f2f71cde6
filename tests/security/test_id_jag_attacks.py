"""Attacks on the jwt-bearer grant with ID-JAGs (SEP-990), one per rule, against real processes.

The enterprise identity provider is oidc-provider (tests/fixtures/enterprise_idp.py); the tests
hold its signing key, so a forged ID-JAG differs from a genuine one in exactly the rule under
test: the wrong `typ`, `aud` or `resource`, another client's ID-JAG, a replay (also at a second
instance over the same Redis), expired, too long-lived or from the future, an issuer nobody
trusts, a key the provider never published, `alg: none` and HS256 keyed with the public key, an
unknown scope, a scope beyond the provider's policy, a public client, a client without the
grant, and the provider's own ID token used as a grant. Each is refused without a token and
without a 500. Internal and external mode, on Redis (where a replay across instances is caught).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from joserfc import jwt

from tests.e2e.fixtures import ALL_DEPLOYMENTS
from tests.e2e.servers import ServerProcess, free_port
from tests.fixtures.enterprise_idp import AGENT, Enterprise, enterprise
from tests.idp.provider import USERS, new_signing_key
from tests.integration.auth.helpers import oauth_refused
from tests.resilience.cluster import modern_call, rpc_result

REDIS_DEPLOYMENTS = [ALL_DEPLOYMENTS[1], ALL_DEPLOYMENTS[3]]


@pytest.fixture(scope="module", params=REDIS_DEPLOYMENTS)
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Enterprise]:
    mode, store = request.param
    redis_url = request.getfixturevalue("e2e_redis").url
    workdir = Path(tmp_path_factory.mktemp(f"id-jag-{mode}"))
    with enterprise(workdir, mode, store, redis_url=redis_url) as running:
        yield running


def refused(response: httpx2.Response, error: str = "invalid_grant", status: int = 400) -> str:
    return oauth_refused(response, error, status)


def granted(response: httpx2.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "refresh_token" not in body
    return body


def test_a_genuine_id_jag_is_granted_once(world: Enterprise) -> None:
    id_jag = world.forge()
    body = granted(world.present(id_jag))
    assert body["scope"] == "mcp:tools:read notes:read"
    assert "jti" in refused(world.present(id_jag))


def test_a_replay_at_another_instance_over_the_same_redis_is_refused(
    world: Enterprise, tmp_path: Path
) -> None:
    """A second instance of the deployment (same Redis and key prefix, same public URL): the
    ID-JAG's jti is spent everywhere at once."""
    id_jag = world.forge()
    granted(world.present(id_jag))
    port = free_port()
    env = {**world.deployment.processes[-1].env}
    env["MCP_PUBLIC_URL"] = env.get("MCP_PUBLIC_URL") or world.deployment.base_url
    if world.deployment.mode == "external":
        env["AUTH_ISSUER_URL"] = world.deployment.issuer
        args = ["-m", "auth_server", "--port", str(port)]
    else:
        args = ["-m", "mcp_server", "--port", str(port)]
    server = ServerProcess(
        "second-instance",
        [world.deployment.processes[-1].args[0], *args],
        env,
        f"http://127.0.0.1:{port}/healthz",
        tmp_path,
    )
    server.start()
    try:
        assert "jti" in refused(world.present(id_jag, token_endpoint=f"http://127.0.0.1:{port}/token"))
        fresh = world.forge()  # the second instance grants genuine ones itself
        granted(world.present(fresh, token_endpoint=f"http://127.0.0.1:{port}/token"))
    finally:
        server.stop()


@pytest.mark.parametrize(
    "typ", ["at+jwt", "JWT", None, "dpop+jwt"], ids=["access-token", "jwt", "none", "dpop"]
)
def test_a_jwt_of_another_type_is_not_an_id_jag(world: Enterprise, typ: str | None) -> None:
    if typ is None:  # no typ at all
        claims = json.loads(_payload(world.forge()))
        id_jag = jwt.encode({"alg": "RS256", "kid": world.idp.key.kid}, claims, world.idp.key)
    else:
        id_jag = world.forge(header={"typ": typ})
    assert "typ" in refused(world.present(id_jag))


def _payload(token: str) -> bytes:
    part = token.split(".")[1]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


@pytest.mark.parametrize(
    "audience",
    ["https://other-as.example", "{mcp}", ["{issuer}", "https://other-as.example"]],
    ids=["another-as", "the-mcp-resource", "several-audiences"],
)
def test_an_id_jag_for_another_audience_is_refused(world: Enterprise, audience: Any) -> None:
    values = {"issuer": world.deployment.issuer, "mcp": world.deployment.mcp_url}
    aud = (
        [item.format(**values) for item in audience]
        if isinstance(audience, list)
        else audience.format(**values)
    )
    assert "aud" in refused(world.present(world.forge(aud=aud)))


def test_an_id_jag_for_another_resource_is_refused(world: Enterprise) -> None:
    assert "resource" in refused(world.present(world.forge(resource="https://other-mcp.example/mcp")))
    other_list = ["https://other-mcp.example/mcp", "https://third.example/mcp"]
    assert "resource" in refused(world.present(world.forge(resource=other_list)))
    # The request may not ask for another resource than the ID-JAG names either.
    mismatch = world.present(world.forge(), resource="https://other-mcp.example/mcp")
    refused(mismatch, "invalid_target")


def test_another_clients_id_jag_is_refused(world: Enterprise) -> None:
    """other-agent is allowed the grant, but this ID-JAG names enterprise-agent."""
    response = world.present(world.forge(), client=("other-agent", world.other_agent_secret))
    assert "client_id" in refused(response)
    response = world.present(world.forge(client_id="other-agent"))  # presented by enterprise-agent
    assert "client_id" in refused(response)


@pytest.mark.parametrize(
    ("claims", "rule"),
    [
        ({"exp": -600, "iat": -900}, "expired"),
        ({"exp": 3600}, "too long"),
        ({"iat": 600, "exp": 700}, "iat"),
        ({"iat": None}, "iat"),
        ({"jti": None}, "jti"),
        ({"sub": None}, "ID-JAG"),
        ({"client_id": None}, "client_id"),
    ],
    ids=["expired", "too-long-lived", "iat-in-future", "no-iat", "no-jti", "no-sub", "no-client-id"],
)
def test_an_id_jag_outside_its_time_window_or_missing_a_claim_is_refused(
    world: Enterprise, claims: dict[str, Any], rule: str
) -> None:
    """Times are seconds from now, made when the test runs (a long suite outlives collection)."""
    now = int(time.time())
    made = {
        name: now + value if name in ("exp", "iat") and value is not None else value
        for name, value in claims.items()
    }
    assert rule in refused(world.present(world.forge(**made)))


def test_an_untrusted_issuer_is_refused_without_a_fetch(world: Enterprise) -> None:
    before = world.idp.stats()["jwks"]
    id_jag = world.forge(iss="https://idp.attacker.example")
    assert "issuer" in refused(world.present(id_jag))
    assert world.idp.stats()["jwks"] == before


def test_a_key_the_provider_never_published_is_refused(world: Enterprise) -> None:
    rogue = new_signing_key("rogue-key")
    assert "key" in refused(world.present(world.forge(key=rogue)))
    # Reusing the genuine kid with another key fails the signature instead.
    impostor = new_signing_key(world.idp.key.kid or "enterprise-key-1")
    assert "signature" in refused(world.present(world.forge(key=impostor)))


def test_unknown_kids_do_not_make_the_server_hammer_the_providers_keys(world: Enterprise) -> None:
    granted(world.present(world.forge()))  # keys cached
    before = world.idp.stats()["jwks"]
    for index in range(20):
        refused(world.present(world.forge(key=new_signing_key(f"made-up-{index}"))))
    assert world.idp.stats()["jwks"] - before <= 1  # one refetch at most within the interval


def test_alg_none_and_hmac_keyed_with_the_public_key_are_refused(world: Enterprise) -> None:
    claims = json.loads(_payload(world.forge()))
    for header, key in (
        ({"alg": "none", "typ": "oauth-id-jag+jwt"}, None),
        ({"alg": "HS256", "typ": "oauth-id-jag+jwt", "kid": world.idp.key.kid}, world.idp.public_key_pem()),
    ):
        claims["jti"] = f"{header['alg']}-{time.time()}"
        refused(world.present(world.idp.handmade(header, claims, key)))


def test_an_id_jag_naming_a_scope_we_do_not_know_is_refused(world: Enterprise) -> None:
    assert "scope" in refused(world.present(world.forge(scope="mcp:tools:read admin:everything")))


def test_asking_for_more_than_the_id_jag_allows_never_widens_the_token(world: Enterprise) -> None:
    """The provider allowed reading; the request asks to write too. The token reads only, and a
    request for writing alone gets nothing."""
    body = granted(
        world.present(world.forge(scope="mcp:tools:read notes:read"), scope="notes:read notes:write")
    )
    assert body["scope"] == "notes:read"
    body_call, headers = modern_call("notes_add", {"text": "escalated"}, body["access_token"])
    with httpx2.Client(trust_env=False, timeout=15.0) as http:
        response = http.post(world.deployment.mcp_url, json=body_call, headers=headers)
    assert response.status_code == 403, response.text
    refused(world.present(world.forge(scope="notes:read"), scope="notes:write"), "invalid_scope")


def test_the_providers_per_user_policy_holds_through_the_real_exchange(world: Enterprise) -> None:
    """bob signs in for real; the provider's ID-JAG allows him reading only."""
    id_token = world.sign_in("bob", USERS["bob"]["password"])
    id_jag = world.id_jag(id_token, audience=world.deployment.issuer, resource=world.deployment.mcp_url)
    body = granted(world.present(id_jag, scope="mcp:tools:read notes:read notes:write"))
    assert set(body["scope"].split()) == {"mcp:tools:read", "notes:read"}
    whoami, headers = modern_call("whoami", {}, body["access_token"])
    with httpx2.Client(trust_env=False, timeout=15.0) as http:
        me = rpc_result(http.post(world.deployment.mcp_url, json=whoami, headers=headers))
    assert me["structuredContent"]["subject"] == f"{world.idp.issuer}#bob"


def test_a_public_client_or_one_without_the_grant_gets_nothing(world: Enterprise) -> None:
    public = world.present(world.forge(), client=None, client_id=AGENT)
    assert public.status_code == 401, public.text
    machine = world.present(
        world.forge(client_id="plain-machine"), client=("plain-machine", world.other_agent_secret)
    )
    refused(machine, "unauthorized_client")


def test_the_providers_id_token_is_not_a_grant(world: Enterprise) -> None:
    id_token = world.sign_in("alice", USERS["alice"]["password"])
    assert "typ" in refused(world.present(id_token))


def test_garbage_assertions_are_invalid_grant_never_a_500(world: Enterprise) -> None:
    for assertion in (
        "not-a-jwt",
        "a.b.c",
        "x" * 10_000,
        base64.urlsafe_b64encode(b"[" * 3000).decode() + ".e30.c2ln",
    ):
        refused(world.present(assertion))
