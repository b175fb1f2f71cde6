"""Tokens straight from the provider, by the hand-made OAuth flow of tests/e2e/oauth_flow.py.

The SDK client only ever asks for a token for the resource it talks to; negatives need others
(a token for another resource, an ID token), so these go to the provider directly: DCR, PKCE,
the provider's sign-in and consent pages (driven headlessly), the code exchange.
"""

from __future__ import annotations

import secrets

from tests.e2e.login_driver import authorize
from tests.e2e.oauth_flow import (
    Discovery,
    RegisteredClient,
    Tokens,
    authorization_url,
    exchange_code,
    pkce_pair,
    register,
)
from tests.idp.provider import IdentityProvider

REDIRECT_URI = "http://127.0.0.1:9/callback"  # nothing listens: the driver stops at the Location
MCP_SCOPE = "mcp:tools:read mcp:resources:read mcp:prompts:read notes:read"


def provider_tokens(
    idp: IdentityProvider,
    resource: str,
    *,
    scope: str = MCP_SCOPE,
    user: tuple[str, str] = ("alice", "alice-password"),
    issuer: str | None = None,
) -> tuple[Discovery, RegisteredClient, Tokens]:
    """A fresh public client's tokens for `resource` (plus an ID token when scope has openid),
    from the provider at `issuer` (one of an environment's mounts; default: the provider's own)."""
    discovery = Discovery(prm={}, metadata=idp.metadata(issuer))
    client = register(discovery, REDIRECT_URI, name="tests/idp raw client")
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)
    url = authorization_url(
        discovery,
        client.client_id,
        REDIRECT_URI,
        scope=scope,
        resource=resource,
        state=state,
        challenge=challenge,
    )
    result = authorize(url, username=user[0], password=user[1])
    assert result.error is None, result.redirect_url
    assert result.code, result.redirect_url
    assert result.state == state
    return discovery, client, exchange_code(discovery, client, result.code, verifier, resource)
