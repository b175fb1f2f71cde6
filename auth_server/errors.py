"""OAuth error responses (RFC 6749 section 5.2, RFC 7591 section 3.2.2, RFC 7009, RFC 7662).

The character rule for `error_description` (RFC 6749 sections 4.1.2.1 and 5.2, RFC 7591 3.2.2):
values must be printable ASCII without `"` and `\\` (%x20-21 / %x23-5B / %x5D-7E). Descriptions
here often quote what the client sent (a scope, a redirect URI), so they are made to fit rather
than trusted to: anything outside the set becomes `?`.
"""

from __future__ import annotations

import re
from typing import Literal

from starlette.responses import JSONResponse

# The error codes, as the RFCs register them: a typo is a type error, not a new code.
TokenErrorCode = Literal[  # RFC 6749 section 5.2, RFC 8707 section 2 (invalid_target)
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_target",
    "invalid_dpop_proof",  # RFC 9449 sections 5 and 12.2
    "use_dpop_nonce",  # RFC 9449 section 8
]
AuthorizationErrorCode = Literal[  # RFC 6749 section 4.1.2.1, RFC 8707 section 2
    "invalid_request",
    "unauthorized_client",
    "access_denied",
    "unsupported_response_type",
    "invalid_scope",
    "server_error",
    "temporarily_unavailable",
    "invalid_target",
]
RegistrationErrorCode = Literal["invalid_redirect_uri", "invalid_client_metadata"]  # RFC 7591 3.2.2
# The admin API's own (docs/operations.md); `invalid_token` as in RFC 6750 section 3.1.
AdminErrorCode = Literal["unauthorized", "invalid_token", "forbidden", "not_found", "conflict"]
ErrorCode = TokenErrorCode | AuthorizationErrorCode | RegistrationErrorCode | AdminErrorCode

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_OUTSIDE = re.compile(r"[^\x20-\x21\x23-\x5b\x5d-\x7e]")
MAX_DESCRIPTION_LENGTH = 300


def error_description(text: str) -> str:
    """`text` within RFC 6749 section 5.2's `error_description` characters (printable ASCII
    without `"` and `\\`; anything else becomes `?`), at most MAX_DESCRIPTION_LENGTH long."""
    return _OUTSIDE.sub("?", text)[:MAX_DESCRIPTION_LENGTH]


def quoted(value: str, limit: int = 60) -> str:
    """Client input to echo inside a description: the characters outside the set dropped, long
    values cut."""
    return f"'{_OUTSIDE.sub('', value[:limit])}'" + ("..." if len(value) > limit else "")


class OAuthError(Exception):
    """Raised anywhere in a back-channel endpoint; rendered as the spec's JSON error object."""

    def __init__(
        self,
        error: ErrorCode,
        description: str | None = None,
        *,
        status_code: int = 400,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error
        self.description = description
        self.status_code = status_code
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        body: dict[str, str] = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return JSONResponse(body, status_code=self.status_code, headers={**NO_STORE, **self.headers})
