"""Local users and their password hashes.

Users come from AUTH_USERS as `{"name": "<hash>"}`; with none configured the development user
`demo` / `demo` exists. Hashes are self-describing strings, `scrypt$n$r$p$salt$hash` (salt and
hash in unpadded base64url), so the cost can be raised later without breaking stored hashes.
`scripts/hash-password.py` makes them.

scrypt is memory-hard (hashlib ships it, no extra dependency). Verification always does the same
work, also for unknown users (against a dummy hash), and compares in constant time, so neither
timing nor the answer tells an attacker whether a user name exists.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from auth_server.models import MACHINE_SUBJECT_PREFIX
from shared.settings import Settings

DEV_USER = "demo"
DEV_PASSWORD = "demo"  # noqa: S105 - the documented development login, used when AUTH_USERS is empty

# n=2**14, r=8: 16 MiB and ~50 ms per hash; OWASP's minimum for scrypt is n=2**17 with r=8, p=1,
# which `hash_password(..., n=2**17)` produces for deployments that want it.
DEFAULT_N, DEFAULT_R, DEFAULT_P = 2**14, 8, 1
SALT_BYTES, HASH_BYTES = 16, 32
MAX_PASSWORD_BYTES = 1024


class BadPasswordHash(ValueError):
    """A configured hash is not in the `scrypt$n$r$p$salt$hash` format."""


@dataclass(frozen=True, slots=True)
class PasswordHash:
    n: int
    r: int
    p: int
    salt: bytes
    hash: bytes

    @classmethod
    def parse(cls, encoded: str) -> PasswordHash:
        parts = encoded.split("$")
        if len(parts) != 6 or parts[0] != "scrypt":
            raise BadPasswordHash("expected scrypt$n$r$p$salt$hash (make one with scripts/hash-password.py)")
        try:
            n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
            salt, digest = _b64decode(parts[4]), _b64decode(parts[5])
        except ValueError:
            raise BadPasswordHash("n, r and p must be integers, salt and hash base64url") from None
        if n < 2 or n & (n - 1) or r < 1 or p < 1 or not salt or len(digest) < 16:
            raise BadPasswordHash("n must be a power of two, r and p positive, salt and hash present")
        return cls(n, r, p, salt, digest)

    def encode(self) -> str:
        return f"scrypt${self.n}${self.r}${self.p}${_b64encode(self.salt)}${_b64encode(self.hash)}"

    def matches(self, password: str) -> bool:
        computed = _scrypt(password, self.salt, self.n, self.r, self.p, len(self.hash))
        return hmac.compare_digest(computed, self.hash)


def hash_password(password: str, *, n: int = DEFAULT_N, r: int = DEFAULT_R, p: int = DEFAULT_P) -> str:
    salt = secrets.token_bytes(SALT_BYTES)
    return PasswordHash(n, r, p, salt, _scrypt(password, salt, n, r, p, HASH_BYTES)).encode()


class UserDirectory:
    """Checks user names and passwords against the configured hashes."""

    def __init__(self, hashes: dict[str, PasswordHash]) -> None:
        self._hashes = hashes
        # Unknown names are checked against this, so they cost as much as known ones (same
        # parameters, random salt and hash: nothing to compute up front, nothing matches it).
        self._dummy = PasswordHash(
            DEFAULT_N, DEFAULT_R, DEFAULT_P, secrets.token_bytes(SALT_BYTES), secrets.token_bytes(HASH_BYTES)
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> UserDirectory:
        """AUTH_USERS, or the dev user demo/demo when empty; ValueError names a bad entry."""
        if not settings.auth_users:
            return cls({DEV_USER: _dev_user_hash()})
        hashes = {}
        for name, encoded in settings.auth_users.items():
            if not name or len(name) > 100 or any(ch <= " " for ch in name):
                raise ValueError(f"AUTH_USERS: invalid user name {name!r}")
            if "://" in name:  # reserved: federated subjects are "<issuer URL>#<sub>" (upstream.py)
                raise ValueError(f"AUTH_USERS: user name {name!r} must not contain '://'")
            reserved = MACHINE_SUBJECT_PREFIX  # machine clients' subjects (models.py)
            if name.startswith(reserved):
                raise ValueError(f"AUTH_USERS: user name {name!r} must not start with {reserved!r}")
            try:
                hashes[name] = PasswordHash.parse(encoded)
            except BadPasswordHash as exc:
                raise ValueError(f"AUTH_USERS[{name!r}]: {exc}") from None
        return cls(hashes)

    def knows(self, username: str) -> bool:
        """For audit lines only: a name that is not a user may be a password typed in the wrong box."""
        return username in self._hashes

    def authenticate(self, username: str, password: str) -> str | None:
        """The user's subject (their name) when the password is right, else None.

        CPU-bound (one scrypt): async callers run it in a worker thread.
        """
        if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
            return None
        known = self._hashes.get(username)
        candidate = known or self._dummy
        correct = candidate.matches(password)
        return username if known is not None and correct else None


@functools.cache
def _dev_user_hash() -> PasswordHash:
    """Hashed once per process: every app built in it (tests build many) shares the dev user."""
    return PasswordHash.parse(hash_password(DEV_PASSWORD))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=length
    )


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError(str(exc)) from None
