"""OAuth error responses (RFC 6749 section 5.2, RFC 7591 section 3.2.2, RFC 7009, RFC 7662).

The character rule for `error_description` (RFC 6749 sections 4.1.2.1 and 5.2, RFC 7591 3.2.2):
values must be printable ASCII without `"` and `\\` (%x20-21 / %x23-5B / %x5D-7E). Descriptions
here often quote what the client sent (a scope, a redirect URI), so they are made to fit rather
than trusted to: anything outside the set becomes `?`.
"""

from __future__ import annotations

import re

from starlette.responses import JSONResponse

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_OUTSIDE = re.compile(r"[^\x20-\x21\x23-\x5b\x5d-\x7e]")
MAX_DESCRIPTION_LENGTH = 300


def error_description(text: str) -> str:
    return _OUTSIDE.sub("?", text)[:MAX_DESCRIPTION_LENGTH]


class OAuthError(Exception):
    """Raised anywhere in a back-channel endpoint; rendered as the spec's JSON error object."""

    def __init__(
        self,
        error: str,
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
