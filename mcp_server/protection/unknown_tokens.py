"""What unknown tokens may cost, per client address: UNKNOWN_TOKENS_PER_MINUTE.

In external mode every token the MCP server has not seen costs a call to the authorization
server's introspection endpoint. Random junk never repeats, so the negative cache cannot absorb
it: without a bound, one client sending junk made the authorization server throttle the MCP
server, and every other user's not-yet-cached token got 503. Here each client address may cause
at most `per_minute` lookups that turn out unknown or inactive (a fixed window per address, as the
authorization server's limits); past that, its uncached tokens get 429 with Retry-After at once,
without a call. Its cached tokens keep working, and no other address is affected.

A lookup is counted when it starts and given back when the token was valid or the authorization
server could not answer (`shared.validation.LookupBudget`), so a burst of concurrent junk is
bounded too, not only junk sent one after another.

The address is the request's client as the ASGI scope has it (`scope["client"]`, which the
FORWARDED_ALLOW_IPS middleware rewrites behind trusted proxies). IPv6 clients count per /64,
the block one subscriber usually holds, so rotating addresses inside it buys nothing. The counts
live in this process (each instance bounds its own calls) in a table of at most `max_addresses`,
oldest window dropped first. With several workers on one port (WEB_CONCURRENCY) each worker
gets its share of the budget, so the server as a whole still asks about at most about
`per_minute` unknown tokens per address (an address whose connections all land on one worker is
limited a little earlier), with no shared counter on the path of every junk token.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import Scope

from shared.bounded_cache import BoundedCache
from shared.settings import Settings

WINDOW_SECONDS = 60.0
MAX_ADDRESSES = 100_000
IPV6_PREFIX = 64


def address_key(host: str) -> str:
    """The bucket of a client address: itself for IPv4 (and names), its /64 for IPv6."""
    if ":" not in host:
        return host
    try:
        address = ipaddress.IPv6Address(host.strip("[]"))
    except ValueError:
        return host
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((address, IPV6_PREFIX), strict=False))


class UnknownTokenLimit:
    """Per-address budgets of lookups that may turn out unknown (see the module docstring)."""

    def __init__(
        self,
        per_minute: int,
        *,
        window: float = WINDOW_SECONDS,
        max_addresses: int = MAX_ADDRESSES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit = per_minute
        self._window = window
        self._clock = clock
        # address key -> (window end, lookups counted), oldest window first
        self._windows: BoundedCache[str, tuple[float, int]] = BoundedCache(max_addresses, lru=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> UnknownTokenLimit:
        return cls(math.ceil(settings.unknown_tokens_per_minute / settings.web_concurrency))

    def __len__(self) -> int:
        """Addresses currently tracked (at most `max_addresses`)."""
        return len(self._windows)

    def budget_for(self, scope: Scope) -> AddressBudget:
        client = scope.get("client")
        return AddressBudget(self, client[0] if client else "unknown")

    def spend(self, host: str) -> int:
        key, now = address_key(host), self._clock()
        end, count = self._windows.get(key) or (0.0, 0)
        if end <= now:
            self._windows.pop(key)  # a new window goes to the end: oldest stay first
            end, count = now + self._window, 0
        if count >= self._limit:
            return max(1, math.ceil(end - now))
        self._windows.put(key, (end, count + 1))
        return 0

    def refund(self, host: str) -> None:
        key = address_key(host)
        entry = self._windows.get(key)
        if entry is not None and entry[1] > 0:
            self._windows.put(key, (entry[0], entry[1] - 1))


@dataclass(frozen=True, slots=True)
class AddressBudget:
    """One request's `LookupBudget`: its client address's share of an `UnknownTokenLimit`."""

    limit: UnknownTokenLimit
    host: str

    def spend(self) -> int:
        return self.limit.spend(self.host)

    def refund(self) -> None:
        self.limit.refund(self.host)
