"""The token endpoint's grant types, one module each, and the grant record that ties a user's
consent to every token issued from it."""

from __future__ import annotations

from shared.oauth import JWT_BEARER_GRANT, TOKEN_EXCHANGE_GRANT, GrantType
from shared.settings import Settings


def served_grant_types(settings: Settings) -> tuple[GrantType, ...]:
    """The grant types /token serves, as the metadata advertises them: the enterprise assertion
    with ENTERPRISE_IDP_ISSUERS; token exchange with TOKEN_EXCHANGE_AUDIENCES on the standalone
    server (internal mode's MCP server exchanges in process: no client may at /token)."""
    grants: list[GrantType] = ["authorization_code", "refresh_token", "client_credentials"]
    if settings.enterprise_idp_issuers:
        grants.append(JWT_BEARER_GRANT)
    if settings.token_exchange_audiences and settings.auth_mode == "external":
        grants.append(TOKEN_EXCHANGE_GRANT)
    return tuple(grants)
