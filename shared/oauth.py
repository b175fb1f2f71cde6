"""OAuth vocabulary both servers use: the grant types the authorization server knows.

The token endpoint dispatches on them, registration accepts them, the metadata document
advertises them and the metrics label issued tokens by them, all from this one tuple. Two are
served only when configured (`auth_server.grants.served_grant_types`): the jwt-bearer grant for
ID-JAGs (ENTERPRISE_IDP_ISSUERS) and token exchange (TOKEN_EXCHANGE_AUDIENCES; docs/agent-identity.md).
"""

from __future__ import annotations

from typing import Final, Literal, get_args

JWT_BEARER_GRANT: Final = "urn:ietf:params:oauth:grant-type:jwt-bearer"  # RFC 7523 2.1, ID-JAGs
TOKEN_EXCHANGE_GRANT: Final = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105 - RFC 8693

GrantType = Literal[
    "authorization_code",
    "refresh_token",
    "client_credentials",
    "urn:ietf:params:oauth:grant-type:jwt-bearer",
    "urn:ietf:params:oauth:grant-type:token-exchange",
]
GRANT_TYPES: tuple[GrantType, ...] = get_args(GrantType)
