"""The public keys of clients that authenticate with a signed JWT (`private_key_jwt`, RFC 7523).

A client's keys come from its metadata: `jwks` (the keys themselves, from AUTH_CLIENTS or a
client ID metadata document; checked by `key_sets.py`) or `jwks_uri` (a URL where it publishes
them). A `jwks_uri` is fetched like a client metadata document, because whoever publishes a
metadata document chooses it: `safe_fetch` (https only, public addresses only with DNS pinning,
no redirects, a byte cap and one deadline; loopback http only with CIMD_ALLOW_LOOPBACK).

Fetched key sets are cached in this process per URL (at most CACHE_ENTRIES URLs, least recently
used dropped), for the document's max-age within [MIN_CACHE_SECONDS, CIMD_CACHE_TTL]. An
assertion naming a `kid` the cached set lacks (the client rotated its key) refetches the set, but
a URL is fetched at most once per REFETCH_INTERVAL seconds, however many unknown `kid`s arrive:
made-up kids cannot turn this server into a load generator. A failed fetch counts the same.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from auth_server.clients.documents import cache_seconds
from auth_server.clients.fetch import FetchRefused, Resolver, fetch_document, parse_target, system_resolver
from auth_server.clients.key_sets import PublicKey, keys_of
from shared import untrusted_json
from shared.bounded_cache import BoundedCache
from shared.settings import Settings

logger = logging.getLogger(__name__)

MAX_JWKS_BYTES = 32 * 1024
CACHE_ENTRIES = 1000
MIN_CACHE_SECONDS = 30
REFETCH_INTERVAL = 5.0


@dataclass(slots=True)
class _Cached:
    keys: list[PublicKey]
    fetched_at: float
    expires_at: float


class ClientKeys:
    """Finds the keys a client signs with; fetches and caches `jwks_uri` key sets (see above)."""

    def __init__(
        self,
        *,
        allow_loopback: bool,
        timeout: float,
        max_cache_seconds: int,
        resolver: Resolver = system_resolver,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._allow_loopback = allow_loopback
        self._timeout = timeout
        self._max_cache = max(max_cache_seconds, MIN_CACHE_SECONDS)
        self._resolver = resolver
        self._clock = clock
        self._cache: BoundedCache[str, _Cached] = BoundedCache(CACHE_ENTRIES)
        self._attempts: BoundedCache[str, float] = BoundedCache(CACHE_ENTRIES)  # url -> last fetch
        self.fetches = 0  # observability and tests

    @classmethod
    def from_settings(cls, settings: Settings, *, resolver: Resolver = system_resolver) -> ClientKeys:
        return cls(
            allow_loopback=settings.cimd_allow_loopback,
            timeout=settings.cimd_timeout,
            max_cache_seconds=settings.cimd_cache_ttl,
            resolver=resolver,
        )

    async def candidates(
        self, *, jwks: Mapping[str, Any] | None, jwks_uri: str | None, kid: str | None
    ) -> list[PublicKey]:
        """The keys that may have signed an assertion with this `kid` (every key when it has
        none). Empty when none fits, after at most one (rate-limited) refetch of `jwks_uri`."""
        if jwks is not None:
            return _matching(keys_of(jwks), kid)
        if jwks_uri is None:
            return []
        cached = self._cache.get(jwks_uri)
        now = self._clock()
        if cached is not None and now < cached.expires_at:
            found = _matching(cached.keys, kid)
            if found or kid is None:
                return found
        fetched = await self._refetch(jwks_uri, now)
        if fetched is None:
            return _matching(cached.keys, kid) if cached is not None else []
        return _matching(fetched.keys, kid)

    async def _refetch(self, url: str, now: float) -> _Cached | None:
        """Fetch the set unless this URL was tried less than REFETCH_INTERVAL ago."""
        last = self._attempts.get(url)
        if last is not None and now - last < REFETCH_INTERVAL:
            return None
        self._attempts.put(url, now)
        self.fetches += 1
        try:
            document = await fetch_document(
                parse_target(url),
                max_bytes=MAX_JWKS_BYTES,
                time_limit=self._timeout,
                allow_loopback=self._allow_loopback,
                resolver=self._resolver,
            )
            jwks = untrusted_json.parse(document.body, max_bytes=MAX_JWKS_BYTES)
        except (FetchRefused, untrusted_json.UntrustedJsonError) as exc:
            logger.info("client key set %s unusable: %s", url[:200], exc)
            return None
        keys = keys_of(jwks) if isinstance(jwks, dict) else []
        ttl = min(
            max(cache_seconds(document.cache_control, self._max_cache), MIN_CACHE_SECONDS), self._max_cache
        )
        entry = _Cached(keys, now, now + ttl)
        self._cache.put(url, entry)
        return entry


def _matching(keys: list[PublicKey], kid: str | None) -> list[PublicKey]:
    if kid is None:
        return list(keys)
    return [key for key in keys if key.kid == kid]
