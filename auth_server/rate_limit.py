"""Fixed-window rate limiting for the endpoints an attacker would brute-force.

OAuth 2.1 section 7.7 asks the AS to stop guessing of codes, tokens, client secrets and passwords;
RFC 7591 section 3 allows limiting open registration. One counter per (endpoint, client IP) lives
in the shared `Store`, so every instance behind a load balancer counts together. A fixed window
(the first request opens a 60 s window) costs one atomic INCR per request and is easy to reason
about; its known weakness, up to 2x the limit across a window edge, does not matter at a
brute-force scale of 2^128.

The client IP is Starlette's `request.client.host`. Behind a reverse proxy set
FORWARDED_ALLOW_IPS to the proxy's addresses (or pass `--forwarded-allow-ips` to either server):
the first middleware of both apps (`shared/forwarded.py`) then puts the address the proxy reports
there, so every limit counts per real client with no change here (docs/operations.md).
"""

from __future__ import annotations

import math
from typing import Literal

from starlette.requests import Request

from auth_server.audit import AuditLog
from auth_server.errors import OAuthError
from shared.storage import records
from shared.storage.base import Store
from shared.storage.records import rate_limit_key

# What is counted; `check_ip`'s key is a client address except for "cimd_url" (a URL's digest).
LimitedEndpoint = Literal[
    "token", "introspect", "revoke", "register", "login", "authorize", "cimd_fetch", "cimd_url"
]
# Buckets counted per authenticated client rather than per IP, and buckets that count only
# failures (checked before the work, counted after it fails).
ClientBucket = Literal["introspect"]
FailureBucket = Literal["introspect-auth-failed", "admin-auth-failed"]

WINDOW_SECONDS = 60.0


class RateLimited(OAuthError):
    """429 Too Many Requests with Retry-After.

    JSON endpoints re-raise it like any OAuthError; HTML pages (login) catch it and render their
    own page using `retry_after`. `temporarily_unavailable` is the registered OAuth error value
    closest in meaning (RFC 6749 section 4.1.2.1); the 429 status carries the precise meaning.
    """

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            "temporarily_unavailable",
            f"too many requests; retry after {retry_after} seconds",
            status_code=429,
            headers={"Retry-After": str(retry_after)},
        )
        self.retry_after = retry_after


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class RateLimiter:
    """`await limiter.check("token", request)` before doing any work; raises RateLimited."""

    def __init__(
        self,
        store: Store,
        per_minute: int,
        *,
        audit: AuditLog | None = None,
        window: float = WINDOW_SECONDS,
    ) -> None:
        self._store = store
        self._limit = per_minute
        self._window = window
        self._audit = audit

    async def check(self, endpoint: LimitedEndpoint, request: Request) -> None:
        await self.check_ip(endpoint, client_ip(request))

    async def check_ip(self, endpoint: LimitedEndpoint, ip: str) -> None:
        key = rate_limit_key(endpoint, ip)
        count = await records.count(self._store, key, self._window)
        if count > self._limit:
            await self._refuse(key, count == self._limit + 1, ip=ip, endpoint=endpoint)

    async def check_client(self, bucket: ClientBucket, client_id: str, per_minute: int) -> None:
        """Count one request of an authenticated client against its own limit `per_minute`."""
        key = rate_limit_key(bucket, f"client:{client_id}")
        count = await records.count(self._store, key, self._window)
        if count > per_minute:
            await self._refuse(key, count == per_minute + 1, client_id=client_id, endpoint=bucket)

    async def refuse_if_failed_too_often(self, bucket: FailureBucket, ip: str) -> None:
        """RateLimited while `ip` has used up its failures in `bucket`; counts nothing itself."""
        counted = await self._store.get(rate_limit_key(bucket, ip))
        if counted is not None and counted.isdigit() and int(counted) >= self._limit:
            await self._refuse(rate_limit_key(bucket, ip), False, ip=ip, endpoint=bucket)

    async def count_failure(self, bucket: FailureBucket, ip: str) -> None:
        """One more failure of `ip` (a failed client authentication, say) in `bucket`."""
        count = await records.count(self._store, rate_limit_key(bucket, ip), self._window)
        if self._audit is not None and count == self._limit:  # once per window, not per request
            self._audit.record("rate_limited", ip=ip, endpoint=bucket)

    async def _refuse(self, key: str, first: bool, **audit: str) -> None:
        remaining = await self._store.ttl(key)
        retry_after = max(1, math.ceil(remaining if remaining is not None else self._window))
        if self._audit is not None and first:  # once per window, not per request
            self._audit.record("rate_limited", **audit)
        raise RateLimited(retry_after)
