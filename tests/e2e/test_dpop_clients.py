"""DPoP end to end with clients nobody here wrote: panva's openid-client 6.9.1 and dpop 2.1.2, and
the MCP TypeScript SDK's client, on Node 22 (tests/e2e/dpop_client.mjs; pinned in
scripts/ensure-node-tools.sh).

The client discovers the authorization server from the MCP server's metadata, registers itself as a
public client with `dpop_bound_access_tokens`, runs authorization code + PKCE with `dpop_jkt` (we
sign in as demo/demo on our own pages, headlessly), redeems the code with a DPoP proof, calls
`whoami` through the MCP SDK over openid-client's DPoP-protected fetch, refreshes with a proof, calls
again, and lists the tools once more with proofs made by hand with `dpop`. With DPOP_NONCE=required
the clients meet `use_dpop_nonce` at the token endpoint and at the MCP endpoint and retry with the
server's nonce, as RFC 9449 section 8 and 9 describe.

Every deployment kind the MCP server knows: internal mode (the in-process validator, opaque and JWT
tokens), external mode with JWTs checked against the authorization server's keys and external
mode by introspection (the `cnf` of the introspection answer). Then the test checks what the
clients cannot see: the tokens really are bound (introspection `cnf.jkt`, the JWT's own `cnf`),
the same token as Bearer is refused (section 7.2), and the public client's refresh token is bound
to the key (section 5): no proof, or a proof by another key, gets `invalid_grant`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.e2e.dpop_clients import jwt_claims, run_client
from tests.e2e.oauth_flow import discover, initialize
from tests.e2e.servers import Deployment
from tests.fixtures.dpop_client import DPoPKey

CASES = [
    pytest.param("internal", "memory", {}, id="internal-opaque"),
    pytest.param(
        "internal", "redis", {"TOKEN_FORMAT": "jwt", "DPOP_NONCE": "required"}, id="internal-jwt-redis-nonces"
    ),
    pytest.param("external", "memory", {"TOKEN_FORMAT": "jwt", "TOKEN_VALIDATION": "jwt"}, id="external-jwt"),
    pytest.param(
        "external",
        "memory",
        {"TOKEN_FORMAT": "opaque", "TOKEN_VALIDATION": "introspection", "DPOP_NONCE": "required"},
        id="external-introspection-nonces",
    ),
]


def introspect(deployment: Deployment, token: str) -> dict[str, Any]:
    metadata = discover(deployment.mcp_url).metadata
    with httpx2.Client(timeout=15.0, trust_env=False) as http:
        response = http.post(
            metadata["introspection_endpoint"],
            data={"token": token},
            auth=(deployment.introspection_client_id, deployment.introspection_client_secret),
        )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def whoami_text(call: dict[str, Any]) -> str:
    assert not call["whoami"].get("isError"), call
    return json.dumps(call["whoami"])


@pytest.mark.parametrize(("mode", "store", "env"), CASES)
def test_openid_client_and_dpop_run_the_whole_flow_refresh_and_tool_calls_with_bound_tokens(
    start_deployment: Any, tmp_path: Path, mode: str, store: str, env: dict[str, str]
) -> None:
    deployment: Deployment = start_deployment(mode, store, env)
    result = run_client(deployment.mcp_url, tmp_path)

    # The token endpoint answered in the DPoP scheme, and the MCP SDK's calls went through.
    assert result["token"]["token_type"].lower() == "dpop", result["token"]
    assert result["refreshed"]["token_type"].lower() == "dpop", result["refreshed"]
    assert "whoami" in result["first"]["tools"]
    assert "demo" in whoami_text(result["first"])
    assert "demo" in whoami_text(result["second"])
    assert result["raw"]["status"] == 200, result["raw"]
    assert "whoami" in result["raw"]["body"]
    # The hand-made first proof carried no nonce: refused with use_dpop_nonce exactly when required.
    assert result["raw"]["nonceAsked"] is (env.get("DPOP_NONCE") == "required"), result["raw"]

    # Both access tokens are bound to the client's key, where the resource server reads it: the
    # introspection answer's `cnf` (external mode) and the JWT's own `cnf`.
    for issued in (result["token"], result["refreshed"]):
        if mode == "external":
            answer = introspect(deployment, issued["access_token"])
            assert answer["active"] is True, answer
            assert answer["token_type"] == "DPoP", answer
            assert answer["cnf"] == {"jkt": result["jkt"]}, answer
        if env.get("TOKEN_FORMAT") == "jwt":
            assert jwt_claims(issued["access_token"])["cnf"] == {"jkt": result["jkt"]}

    # The same token as Bearer is refused (RFC 9449 section 7.2).
    downgraded = initialize(deployment.mcp_url, result["refreshed"]["access_token"])
    assert downgraded.status_code == 401, downgraded.text
    assert "DPoP" in downgraded.headers["www-authenticate"], downgraded.headers

    # The public client's refresh token is bound to the key too (section 5).
    metadata = discover(deployment.mcp_url).metadata
    form = {
        "grant_type": "refresh_token",
        "refresh_token": result["refreshed"]["refresh_token"],
        "client_id": result["client_id"],
        "resource": deployment.mcp_url,
    }
    thief = DPoPKey.generate()
    with httpx2.Client(timeout=15.0, trust_env=False) as http:
        bare = http.post(metadata["token_endpoint"], data=form)
        another_key = http.post(
            metadata["token_endpoint"],
            data=form,
            headers={"DPoP": thief.proof("POST", metadata["token_endpoint"], nonce=nonce_of(http, form))},
        )
    # The client registered dpop_bound_access_tokens: no proof at all is refused as such.
    assert (bare.status_code, bare.json()["error"]) == (400, "invalid_dpop_proof"), bare.text
    assert (another_key.status_code, another_key.json()["error"]) == (400, "invalid_grant"), another_key.text


def nonce_of(http: httpx2.Client, form: dict[str, str]) -> str | None:
    """The token endpoint's current DPoP nonce when it requires one: a proof without it is
    answered `use_dpop_nonce` with the nonce in `DPoP-Nonce` (and nothing is spent)."""
    endpoint = discover(form["resource"]).metadata["token_endpoint"]
    probe = http.post(endpoint, data=form, headers={"DPoP": DPoPKey.generate().proof("POST", endpoint)})
    return probe.headers.get("dpop-nonce")
