"""Random credentials, their storage digests and constant-time comparison, in one place.

Every code, token and client secret is generated here (256 random bits, URL-safe) and only its
SHA-256 digest is ever stored or logged: a leaked database or log line cannot be replayed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from shared.storage.records import digest as digest  # the storage form of a credential

CREDENTIAL_BYTES = 32  # 256 bits: well above OAuth 2.1's 2^-128 guessing bound (section 7.7)


def new_credential() -> str:
    return secrets.token_urlsafe(CREDENTIAL_BYTES)


def derived_credential(secret: str, salt: str, purpose: str) -> str:
    """A credential only the holder of `secret` (a credential we issued) can compute again, given
    `salt`: BASE64URL(HMAC-SHA256(secret, purpose:salt)), as long as `new_credential`'s.

    For answering a retried request with the very tokens the first one got without storing them:
    the Store keeps the salt and the digests, never `secret`, so a copy of the Store yields nothing.
    The salt is random per use, so no chain of credentials follows from one of them alone."""
    mac = hmac.new(secret.encode(), f"{purpose}:{salt}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def constant_time_equals(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def s256_challenge(verifier: str) -> str:
    """RFC 7636 S256: BASE64URL(SHA256(ASCII(code_verifier))) without padding."""
    raw = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
