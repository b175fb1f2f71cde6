"""A third-party provider issuing DPoP-bound tokens that our MCP server accepts: oidc-provider
9.13.3 with its DPoP feature on, and panva's openid-client and dpop with the MCP TypeScript SDK as
the client (tests/e2e/dpop_client.mjs), nobody here having written either side.

The client finds the provider through our MCP server's metadata, registers there, signs alice in
on the provider's pages (`dpop_jkt` bound), redeems the code and refreshes with DPoP proofs, and
calls `whoami` on our MCP server with the provider's tokens and fresh proofs: in JWT mode our
server reads `cnf.jkt` from the provider's RFC 9068 JWT, in introspection mode from the
provider's introspection answer (`token_type` DPoP, `cnf`). The same token as Bearer is refused.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.dpop_clients import jwt_claims, run_client
from tests.e2e.oauth_flow import initialize
from tests.idp.conftest import World

ALICE = ("alice", "alice-password")


@pytest.mark.parametrize("kind", ["jwt", "introspection"])
def test_the_providers_dpop_bound_tokens_call_our_tools_with_fresh_proofs(
    world: World, tmp_path: Path, kind: str
) -> None:
    deployment = world.jwt if kind == "jwt" else world.introspection
    result = run_client(deployment.mcp_url, tmp_path, user=ALICE)

    assert result["issuer"].rstrip("/") == world.idp.issuer.rstrip("/")
    assert result["token"]["token_type"].lower() == "dpop", result["token"]
    assert result["refreshed"]["token_type"].lower() == "dpop", result["refreshed"]
    for call in (result["first"], result["second"]):
        assert not call["whoami"].get("isError"), call
        assert "alice" in str(call["whoami"])
    assert result["raw"]["status"] == 200, result["raw"]
    if kind == "jwt":
        for issued in (result["token"], result["refreshed"]):
            assert jwt_claims(issued["access_token"])["cnf"] == {"jkt": result["jkt"]}

    downgraded = initialize(deployment.mcp_url, result["refreshed"]["access_token"])
    assert downgraded.status_code == 401, downgraded.text
    assert "DPoP" in downgraded.headers["www-authenticate"], downgraded.headers
