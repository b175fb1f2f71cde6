"""OAuth vocabulary both servers use: the grant types the authorization server serves.

The token endpoint dispatches on them, registration accepts them, the metadata document
advertises them and the metrics label issued tokens by them, all from this one tuple.
"""

from __future__ import annotations

from typing import Literal, get_args

GrantType = Literal["authorization_code", "refresh_token", "client_credentials"]
GRANT_TYPES: tuple[GrantType, ...] = get_args(GrantType)
