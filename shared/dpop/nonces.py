"""Server-provided DPoP nonces (RFC 9449 section 8 at the token endpoint, section 9 at /mcp).

With DPOP_NONCE=required a proof must carry a `nonce` this server handed out recently; one that
does not is answered `use_dpop_nonce` with a fresh value in the `DPoP-Nonce` header, and the
client retries. That bounds how long a proof made in advance (by a compromised client, say) can
be used: a nonce limits it to the nonce's life whatever the proof's `iat` says.

Nonces are stateless: `base64url(window || MAC(key, purpose || window))`, where `window` counts
LIFETIME-second periods. One is accepted in its own window and the next (so for LIFETIME to twice
that), and a proof carrying the previous window's value gets the current one in its answer's
`DPoP-Nonce` header (`Freshness.RENEW`), so a busy client moves on without a failed request.
The MAC key is derived from a secret kept in the Store (`dpop:nonce-secret`, created by whichever
instance needs it first), so every instance on one Redis issues and accepts the same values. The
authorization server and the MCP server derive their own keys (`purpose`): a token endpoint
nonce is not one the MCP endpoint handed out.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import enum
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from typing import Literal

from shared.storage.base import Store
from shared.storage.records import DPOP_NONCE_SECRET_KEY

LIFETIME = 300  # seconds a window lasts; a value is accepted for one to two windows
NoncePurpose = Literal["token", "resource"]
_MAC_BYTES = 16


class Freshness(enum.Enum):
    CURRENT = "current"
    RENEW = "renew"  # accepted; the answer carries the current value
    STALE = "stale"  # refused: use_dpop_nonce


class DPoPNonces:
    def __init__(
        self, store: Store, *, purpose: NoncePurpose, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self._purpose = purpose.encode()
        self._clock = clock
        self._key: bytes | None = None
        self._lock = asyncio.Lock()
        self._issued: tuple[int, str] = (-1, "")

    async def _mac_key(self) -> bytes:
        if self._key is None:
            async with self._lock:
                if self._key is None:
                    await self._store.set(DPOP_NONCE_SECRET_KEY, secrets.token_hex(32), only_if_absent=True)
                    secret = await self._store.get(DPOP_NONCE_SECRET_KEY)
                    if secret is None:  # deleted in between: this process's own, until restarted
                        secret = secrets.token_hex(32)
                    self._key = hmac.new(
                        secret.encode(), b"dpop-nonce:" + self._purpose, hashlib.sha256
                    ).digest()
        return self._key

    def _value(self, key: bytes, window: int) -> str:
        stamp = window.to_bytes(8, "big")
        mac = hmac.new(key, stamp, hashlib.sha256).digest()[:_MAC_BYTES]
        return base64.urlsafe_b64encode(stamp + mac).rstrip(b"=").decode()

    async def current(self) -> str:
        """The value to hand out now (the same for everyone within a window)."""
        window = int(self._clock() // LIFETIME)
        if self._issued[0] != window:
            self._issued = (window, self._value(await self._mac_key(), window))
        return self._issued[1]

    async def freshness(self, nonce: object) -> Freshness:
        if not isinstance(nonce, str) or len(nonce) != 32:
            return Freshness.STALE
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except (binascii.Error, ValueError):
            return Freshness.STALE
        window = int.from_bytes(raw[:8], "big")
        now = int(self._clock() // LIFETIME)
        if window not in (now, now - 1):
            return Freshness.STALE
        if not hmac.compare_digest(self._value(await self._mac_key(), window), nonce):
            return Freshness.STALE
        return Freshness.CURRENT if window == now else Freshness.RENEW
