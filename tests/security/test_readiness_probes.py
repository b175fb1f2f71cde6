"""An anonymous caller cannot make the servers hammer a broken identity provider through /readyz.

/readyz is public (load balancers call it without credentials), and while a provider's metadata
is unusable it is what asks the provider again. A flood of /readyz at the MCP server trusting the
provider (AUTH_SERVER_URL) and at our authorization server signing users in there
(UPSTREAM_OIDC_ISSUER) must not become a flood at the provider: after a failed discovery each
server waits 5 s before asking again, whatever the number of calls. Counted by oidc-provider.
"""

from __future__ import annotations

from pathlib import Path

from tests.e2e.servers import free_port
from tests.idp.provider import start_provider
from tests.idp.test_readiness import readyz, trusting_another_spelling


def test_a_readyz_flood_does_not_become_a_discovery_flood_at_a_provider_we_cannot_use(
    tmp_path: Path,
) -> None:
    provider = start_provider(tmp_path / "provider", free_port(), resources={}, rfc8414=False)
    mcp, federated = trusting_another_spelling(tmp_path, provider)
    try:
        mcp.start()
        federated.start()
        for base_url in (mcp.base_url, federated.base_url):
            assert readyz(base_url).status_code == 503  # each has asked, and refused the answer
        asked_before = provider.stats()["discovery"]
        calls = 10
        for _ in range(calls):
            for base_url in (mcp.base_url, federated.base_url):
                assert readyz(base_url).status_code == 503
        # Each server may ask again once its 5 s are up, never once per call.
        assert provider.stats()["discovery"] - asked_before < calls
    finally:
        federated.stop()
        mcp.stop()
        provider.stop()
