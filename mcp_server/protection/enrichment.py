"""Per-request principal enrichment: the tenant record of every authenticated request, cached.

`EnrichPrincipal` sits behind the bearer and scope checks (a refused request costs no lookup) and
puts the caller's `Tenant` (`mcp_server/tenants.py`: the one function a fork replaces) into
`scope["state"]["tenant"]`, where `principal.current_tenant` reads it. `TenantCache` makes that
cheap and safe:

- bounded: at most `size` records, least recently used dropped first; each kept at most `ttl`
  seconds (0: every request looks up);
- keyed by `tenant_key(principal)`, a tuple, so two principals never share a record, and never
  by a credential: a record is about who is calling, not about one token;
- one lookup per principal at a time: concurrent requests of one principal wait for the same
  lookup (shielded, so one caller disconnecting does not cancel the others' answer);
- a lookup that raises, or outlasts `timeout`, is `TenantUnavailable`: the middleware answers 503
  with Retry-After (the bearer middleware's 503, `middleware.unavailable_response`), never 500;
  failures are not cached;
- `invalidate(issuer, subject)` drops the principal's records and any lookup still in flight for
  it (its waiters get the answer, nobody else does); the composition root subscribes it to the
  process's `RevocationFeed` (`shared/revocations.py` says when revocations arrive, per mode).

Only principals the validators accepted reach the cache: an anonymous caller can make it neither
store nor look up anything.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_server.protection.middleware import PRINCIPAL_STATE_KEY, unavailable_response
from mcp_server.tenants import Tenant, TenantUnavailable, look_up_tenant, tenant_key
from shared import metrics
from shared.bounded_cache import BoundedCache
from shared.retry_after import BUSY
from shared.settings import Settings
from shared.validation import Principal

logger = logging.getLogger(__name__)

TENANT_STATE_KEY = "tenant"
UNAVAILABLE_DESCRIPTION = "The account behind this credential cannot be looked up right now; retry shortly"
DEFAULT_RETRY_AFTER = BUSY

TenantLookup = Callable[[Principal], Awaitable[Tenant]]
TenantKey = Callable[[Principal], Hashable]


@dataclass(slots=True)
class _Entry:
    tenant: Tenant
    identity: tuple[str | None, str]  # (issuer, subject): what a revocation names
    expires: float


@dataclass(slots=True)
class _Lookup:
    future: asyncio.Future[Tenant]
    identity: tuple[str | None, str]


class TenantCache:
    """Tenant records by principal: bounded, expiring, one lookup per principal at a time."""

    def __init__(
        self,
        lookup: TenantLookup = look_up_tenant,
        *,
        key: TenantKey = tenant_key,
        ttl: float = 60.0,
        size: int = 10_000,
        timeout: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self._key = key
        self._ttl = max(0.0, float(ttl))
        self._timeout = float(timeout)
        self._clock = clock
        self._entries: BoundedCache[Hashable, _Entry] = BoundedCache(max(1, int(size)))
        self._inflight: dict[Hashable, _Lookup] = {}
        # Plain counters, read by shared.metrics at scrape time (nothing on the hot path).
        self.hits = 0
        self.misses = 0  # lookups started
        self.failures = 0  # lookups that raised or timed out
        self.invalidations = 0  # records dropped because their principal's tokens were revoked

    @classmethod
    def from_settings(
        cls, settings: Settings, lookup: TenantLookup = look_up_tenant, key: TenantKey = tenant_key
    ) -> TenantCache:
        return cls(
            lookup,
            key=key,
            ttl=settings.tenant_cache_ttl,
            size=settings.tenant_cache_size,
            timeout=settings.tenant_lookup_timeout,
        )

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, principal: Principal) -> Tenant:
        """The tenant of `principal`, from the cache or one (shared) lookup; `TenantUnavailable`
        when the lookup fails or takes too long."""
        key = self._key(principal)
        entry = self._entries.get(key)
        if entry is not None:
            if entry.expires > self._clock():
                self.hits += 1
                return entry.tenant
            self._entries.pop(key)
        pending = self._inflight.get(key)
        if pending is None:
            self.misses += 1
            identity = (principal.issuer, principal.subject)
            future = asyncio.ensure_future(self._look_up(key, identity, principal))
            pending = _Lookup(future, identity)
            self._inflight[key] = pending
            future.add_done_callback(lambda done: self._forget(key, done))
        return await asyncio.shield(pending.future)

    def invalidate(self, issuer: str | None, subject: str) -> None:
        """Drop every record of the principal (issuer, subject), and keep a lookup for it that is
        still running from being cached (a `RevocationListener`)."""
        identity = (issuer, subject)
        stale = [key for key, entry in self._entries.items() if entry.identity == identity]
        for key in stale:
            self._entries.pop(key)
        for key in [key for key, running in self._inflight.items() if running.identity == identity]:
            del self._inflight[key]
        self.invalidations += len(stale)

    async def _look_up(self, key: Hashable, identity: tuple[str | None, str], principal: Principal) -> Tenant:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout):
                tenant = await self._lookup(principal)
        except TenantUnavailable:
            self._failed("unavailable", started)
            raise
        except TimeoutError:
            self._failed("timeout", started)
            logger.warning("tenant lookup took longer than %.1f s", self._timeout)
            raise TenantUnavailable("tenant lookup timed out", DEFAULT_RETRY_AFTER) from None
        except Exception:
            self._failed("error", started)
            logger.exception("tenant lookup failed")
            raise TenantUnavailable("tenant lookup failed", DEFAULT_RETRY_AFTER) from None
        metrics.tenant_lookup("ok", time.perf_counter() - started)
        running = self._inflight.get(key)
        if self._ttl > 0 and running is not None and running.future is asyncio.current_task():
            self._entries.put(key, _Entry(tenant, identity, self._clock() + self._ttl))
        return tenant

    def _failed(self, outcome: str, started: float) -> None:
        self.failures += 1
        metrics.tenant_lookup(outcome, time.perf_counter() - started)

    def _forget(self, key: Hashable, done: asyncio.Future[Tenant]) -> None:
        running = self._inflight.get(key)
        if running is not None and running.future is done:
            del self._inflight[key]
        if not done.cancelled():
            done.exception()  # marks it retrieved even when every waiter went away


class EnrichPrincipal:
    """ASGI middleware: the authenticated request's tenant into `scope["state"]`, or 503."""

    def __init__(self, app: ASGIApp, tenants: TenantCache) -> None:
        self.app = app
        self._tenants = tenants

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope.get("state")
        principal = state.get(PRINCIPAL_STATE_KEY) if scope["type"] == "http" and state else None
        if state is None or not isinstance(principal, Principal):
            await self.app(scope, receive, send)
            return
        try:
            tenant = await self._tenants.get(principal)
        except TenantUnavailable as unavailable:
            await unavailable_response(unavailable.retry_after, UNAVAILABLE_DESCRIPTION).send(send)
            return
        state[TENANT_STATE_KEY] = tenant
        await self.app(scope, receive, send)
