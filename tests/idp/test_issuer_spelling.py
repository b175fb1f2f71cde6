"""A provider's issuer is trusted exactly as it spells it, trailing slash included (Auth0's is
`https://TENANT.auth0.com/`): RFC 8414 and OpenID discovery compare issuers byte for byte, and so
do MCP clients reading our protected resource metadata.

A second provider, whose issuer ends with "/", checked at the validator and in the metadata
document rendered from the same settings (no server process needed).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mcp_server.protection.metadata import protected_resource_metadata
from shared.settings import Settings
from shared.validation import TokenRejected
from shared.validators.jwt import JwtValidator
from tests.e2e.servers import free_port
from tests.idp.flows import MCP_SCOPE
from tests.idp.provider import IdentityProvider, start_provider

MCP_BASE = "http://127.0.0.1:9"


@pytest.fixture(scope="module")
def slash_idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdentityProvider]:
    port = free_port()
    provider = start_provider(
        Path(tmp_path_factory.mktemp("slash-idp")),
        port,
        resources={f"{MCP_BASE}/mcp": {"format": "jwt"}},
        clients=[],
        issuer=f"http://127.0.0.1:{port}/",
        rfc8414=False,
    )
    yield provider
    provider.stop()


async def test_the_issuer_keeps_its_trailing_slash_in_metadata_and_token_checks(
    slash_idp: IdentityProvider,
) -> None:
    assert slash_idp.metadata()["issuer"] == slash_idp.issuer
    values = {"auth_mode": "external", "auth_server_url": slash_idp.issuer, "token_format": "jwt"}
    settings = Settings(_env_file=None, mcp_public_url=MCP_BASE, **values)  # type: ignore[arg-type]
    assert settings.issuer == slash_idp.issuer
    assert protected_resource_metadata(settings)["authorization_servers"] == [slash_idp.issuer]

    validator = JwtValidator.from_settings(settings)
    try:
        good = slash_idp.sign(slash_idp.claims("alice", settings.mcp_resource_url, MCP_SCOPE))
        assert (await validator.validate(good)).issuer == slash_idp.issuer
        unslashed = slash_idp.claims("alice", settings.mcp_resource_url, MCP_SCOPE, iss=slash_idp.issuer[:-1])
        with pytest.raises(TokenRejected) as rejected:
            await validator.validate(slash_idp.sign(unslashed))
        assert rejected.value.reason == "wrong_issuer"
    finally:
        await validator.aclose()
