"""Static API keys, for clients that predate OAuth: `Authorization: Bearer <key>` or `X-API-Key`.

Configuration holds only the SHA-256 hex digest of each key (settings.api_keys:
`[{"sha256": "<hex>", "subject": "...", "scopes": [...]}]`), so a leaked config file or log
line cannot be replayed. A presented key is hashed and looked up by its digest. That lookup is
safe against timing attacks without an explicit constant-time compare: the dictionary compares
digests, and an attacker cannot choose inputs whose digests share a prefix with a stored one
(SHA-256 preimage resistance), so timing reveals nothing about the stored keys.

An API key is valid for this MCP server only (its audience is the server's own resource URL)
and never expires; rotate by changing configuration.

The principal's subject is the configured one in a namespace of its own, `api-key:<subject>`:
per-user data (notes, tasks, sessions) is keyed by subject, and a key configured as "alice" used
to act as the user alice who signs in, her notebook included. No user can have such a subject
(AUTH_USERS refuses names starting with `api-key:`), as none can have a machine client's
`client:<client_id>`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from shared.scopes import parse
from shared.settings import Settings
from shared.validation import Principal, TokenRejected

_HEX_DIGEST = re.compile(r"^[0-9a-f]{64}$")
API_KEY_SUBJECT_PREFIX = "api-key:"


def api_key_digest(key: str) -> str:
    """The digest to put in settings.api_keys for `key` (also used by the docs and tests)."""
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeyValidator:
    """A TokenValidator for configured static keys; anything else is "not mine" (`malformed`)."""

    def __init__(self, entries: Iterable[Mapping[str, Any]], *, resource: str) -> None:
        self._by_digest: dict[str, Principal] = {}
        for index, entry in enumerate(entries):
            digest = str(entry.get("sha256", "")).strip().lower()
            if not _HEX_DIGEST.match(digest):
                raise ValueError(f"api_keys[{index}].sha256 must be a SHA-256 hex digest (64 hex digits)")
            subject = str(entry.get("subject") or "").strip()
            if not subject:
                raise ValueError(f"api_keys[{index}].subject is required")
            raw_scopes = entry.get("scopes", ())
            scopes = parse(raw_scopes) if isinstance(raw_scopes, str) else tuple(str(s) for s in raw_scopes)
            client_id = str(entry.get("client_id") or f"api-key:{subject}")
            subject = API_KEY_SUBJECT_PREFIX + subject  # never a user's (module docstring)
            self._by_digest[digest] = Principal(
                subject=subject,
                client_id=client_id,
                scopes=frozenset(scopes),
                audience=(resource,),
                issuer=None,
                expires_at=None,
                claims={"auth_method": "api_key", "sub": subject, "client_id": client_id},
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiKeyValidator:
        return cls(settings.api_keys, resource=settings.mcp_resource_url)

    def __len__(self) -> int:
        return len(self._by_digest)

    async def validate(self, token: str) -> Principal:
        principal = self._by_digest.get(api_key_digest(token))
        if principal is None:
            raise TokenRejected("malformed", "not a configured API key")
        return principal
