"""Client key sets (RFC 7517 JWKS) as client metadata carries them, checked (RFC 7591 `jwks`).

The rules, for every key a client may authenticate with (`private_key_jwt`, `keys.py`):
1 to MAX_KEYS public signing keys, RSA of at least 2048 bits or EC on P-256, P-384 or P-521; no
symmetric `oct` keys and no `use` other than `sig`; nothing private: a member such as `d` means a
client published its private key, and the set is refused outright. A set from configuration or
a client ID metadata document must be usable as a whole (`public_jwks`); from a fetched
`jwks_uri`, unusable entries are skipped and the usable ones count (`keys_of`), as JWKS consumers
do.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import Key, RSAKey, import_key

logger = logging.getLogger(__name__)

MAX_KEYS = 10
MIN_RSA_BITS = 2048
_SIGNING_KTY = frozenset({"RSA", "EC"})
_CURVES = frozenset({"P-256", "P-384", "P-521"})
# Members that only a private (or symmetric) key has (RFC 7518 section 6).
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


class UnusableKeySet(ValueError):
    """A key set (or one of its keys) that cannot authenticate anyone; the message says why."""


@dataclass(frozen=True, slots=True)
class PublicKey:
    """One key a client may sign with: its `kid` (if any) and the imported key."""

    kid: str | None
    key: Key


def public_jwks(value: Any) -> dict[str, Any]:
    """Validate a key set from metadata (RFC 7591 `jwks`); the same set, public members only.
    UnusableKeySet says what is wrong."""
    entries = _entries(value)
    for index, entry in enumerate(entries):
        _import(entry, index)  # raises UnusableKeySet
    return {"keys": [_public_members(entry) for entry in entries]}


def keys_of(jwks: Mapping[str, Any]) -> list[PublicKey]:
    """The usable keys of a key set (a fetched one may hold entries we skip)."""
    keys: list[PublicKey] = []
    raw = jwks.get("keys")
    for index, entry in enumerate(raw[:MAX_KEYS] if isinstance(raw, list) else []):
        try:
            key = _import(entry, index)
        except UnusableKeySet as exc:
            logger.info("skipping a client key: %s", exc)
            continue
        kid = entry.get("kid")
        keys.append(PublicKey(kid if isinstance(kid, str) else None, key))
    return keys


def _entries(value: Any) -> list[Any]:
    if not isinstance(value, dict) or not isinstance(value.get("keys"), list):
        raise UnusableKeySet('jwks must be a JSON Web Key Set: {"keys": [...]}')
    entries: list[Any] = value["keys"]
    if not 1 <= len(entries) <= MAX_KEYS:
        raise UnusableKeySet(f"jwks must hold 1 to {MAX_KEYS} keys")
    return entries


def _public_members(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in entry.items() if name not in PRIVATE_MEMBERS}


def _import(entry: Any, index: int) -> Key:
    where = f"key {index}"
    if not isinstance(entry, dict):
        raise UnusableKeySet(f"{where} is not a JSON object")
    if PRIVATE_MEMBERS.intersection(entry):
        raise UnusableKeySet(f"{where} contains private key material: publish public keys only")
    if entry.get("kty") not in _SIGNING_KTY:
        raise UnusableKeySet(f"{where}: kty must be RSA or EC")
    if entry.get("use", "sig") != "sig":
        raise UnusableKeySet(f"{where}: use must be sig")
    if entry.get("kty") == "EC" and entry.get("crv") not in _CURVES:
        raise UnusableKeySet(f"{where}: crv must be P-256, P-384 or P-521")
    kid = entry.get("kid")
    if kid is not None and (not isinstance(kid, str) or not kid or len(kid) > 200):
        raise UnusableKeySet(f"{where}: kid must be a short string")
    try:
        key = import_key(_public_members(entry))
    except (JoseError, ValueError, TypeError):
        raise UnusableKeySet(f"{where} is not a valid public key") from None
    if isinstance(key, RSAKey) and key.raw_value.key_size < MIN_RSA_BITS:
        raise UnusableKeySet(f"{where}: RSA keys need at least {MIN_RSA_BITS} bits")
    return key
