"""Who may call the admin API: the holders of a token whose SHA-256 digest is configured.

ADMIN_TOKEN_SHA256 lists digests, never tokens, so the server's configuration (environment, `.env`,
a config map) does not hold an admin credential: whoever reads it still cannot call the API.
Several digests may be listed at once, to rotate without a gap (add the new one, switch the CLI,
remove the old one). A token is 256 random bits (`new_admin_token`), so a plain SHA-256 is enough
(no salt or slow hash: there is nothing to guess), and a presented token shorter than
MIN_TOKEN_LENGTH is refused even if its digest is listed (a digest of a short password must not
work).

The comparison takes the same time whatever is presented: the token is hashed first, so what is
compared is always two 64-character digests, and it is compared with every configured digest, in
constant time each, without stopping at a match. Timing can tell an attacker neither how much of
a guess was right nor which entry matched.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from auth_server import crypto
from auth_server.audit import fingerprint
from shared.settings import Settings

MIN_TOKEN_LENGTH = 32


def new_admin_token() -> tuple[str, str]:
    """A fresh admin token (256 random bits) and the digest to put in ADMIN_TOKEN_SHA256."""
    token = secrets.token_urlsafe(32)
    return token, crypto.digest(token)


class AdminCredentials:
    def __init__(self, digests: Sequence[str]) -> None:
        self._digests = tuple(digest.lower() for digest in digests)

    @classmethod
    def from_settings(cls, settings: Settings) -> AdminCredentials:
        return cls(settings.admin_token_sha256)

    def __bool__(self) -> bool:
        """Whether any admin token is configured (without one the API is not served at all)."""
        return bool(self._digests)

    def verify(self, presented: str) -> str | None:
        """The presented token's fingerprint (for the audit log) if it is an admin token, else None."""
        candidate = crypto.digest(presented)
        matched = False
        for digest in self._digests:
            matched |= crypto.constant_time_equals(candidate, digest)
        if not matched or len(presented) < MIN_TOKEN_LENGTH:
            return None
        return fingerprint(presented)
