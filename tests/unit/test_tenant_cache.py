"""TenantCache: bounded, expiring, one lookup per principal at a time, dropped on revocation.

The lookups here are plain coroutines that count their calls (the cache's contract is about when
it calls the lookup); the clock is injected, so expiry is checked without waiting.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import pytest

from mcp_server.protection.enrichment import TenantCache
from mcp_server.tenants import Tenant, TenantUnavailable, tenant_key
from shared.revocations import RevocationFeed
from shared.validation import Principal

ISSUER = "https://idp.example"


def principal(subject: str, issuer: str | None = ISSUER, client_id: str = "app") -> Principal:
    return Principal(subject=subject, client_id=client_id, scopes=frozenset(), issuer=issuer)


class Lookups:
    """A lookup that counts its calls per (issuer, subject) and can be held at a gate."""

    def __init__(self) -> None:
        self.calls: Counter[tuple[str | None, str]] = Counter()
        self.gate: asyncio.Event | None = None
        self.fail_with: BaseException | None = None

    async def __call__(self, who: Principal) -> Tenant:
        self.calls[(who.issuer, who.subject)] += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        return Tenant(id=f"{who.issuer}|{who.subject}", name=who.subject, plan="test", note_limit=3)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def cache(lookups: Lookups, clock: Callable[[], float] | None = None, **options: float) -> TenantCache:
    return TenantCache(lookups, clock=clock or Clock(), **options)  # type: ignore[arg-type]


async def test_a_record_is_looked_up_once_per_principal_within_its_ttl() -> None:
    lookups, clock = Lookups(), Clock()
    tenants = cache(lookups, clock, ttl=60)
    first = await tenants.get(principal("alice"))
    assert await tenants.get(principal("alice", client_id="another-app")) is first
    clock.now += 59
    assert await tenants.get(principal("alice")) is first
    assert lookups.calls[(ISSUER, "alice")] == 1
    clock.now += 2
    assert (await tenants.get(principal("alice"))).id == first.id
    assert lookups.calls[(ISSUER, "alice")] == 2
    assert (tenants.hits, tenants.misses) == (2, 2)


async def test_a_zero_ttl_looks_up_on_every_request() -> None:
    lookups = Lookups()
    tenants = cache(lookups, ttl=0)
    for _ in range(3):
        await tenants.get(principal("alice"))
    assert lookups.calls[(ISSUER, "alice")] == 3
    assert len(tenants) == 0


async def test_the_cache_is_bounded_and_drops_the_least_recently_used_first() -> None:
    lookups = Lookups()
    tenants = cache(lookups, size=2)
    await tenants.get(principal("alice"))
    await tenants.get(principal("bob"))
    await tenants.get(principal("alice"))  # alice is now the most recently used
    await tenants.get(principal("carol"))  # evicts bob
    assert len(tenants) == 2
    await tenants.get(principal("alice"))
    await tenants.get(principal("bob"))
    assert lookups.calls == {(ISSUER, "alice"): 1, (ISSUER, "bob"): 2, (ISSUER, "carol"): 1}


async def test_concurrent_requests_of_one_principal_share_one_lookup() -> None:
    lookups = Lookups()
    lookups.gate = asyncio.Event()
    tenants = cache(lookups)
    waiting = [asyncio.ensure_future(tenants.get(principal("alice"))) for _ in range(20)]
    others = [asyncio.ensure_future(tenants.get(principal("bob"))) for _ in range(5)]
    await asyncio.sleep(0)
    lookups.gate.set()
    results = await asyncio.gather(*waiting, *others)
    assert len({id(result) for result in results[:20]}) == 1
    assert lookups.calls == {(ISSUER, "alice"): 1, (ISSUER, "bob"): 1}


async def test_one_waiter_giving_up_does_not_cancel_the_lookup_for_the_others() -> None:
    lookups = Lookups()
    lookups.gate = asyncio.Event()
    tenants = cache(lookups)
    impatient = asyncio.ensure_future(tenants.get(principal("alice")))
    patient = asyncio.ensure_future(tenants.get(principal("alice")))
    await asyncio.sleep(0)
    impatient.cancel()
    lookups.gate.set()
    assert (await patient).name == "alice"
    assert lookups.calls[(ISSUER, "alice")] == 1


@pytest.mark.parametrize(
    "failure",
    [ConnectionError("database down"), TenantUnavailable("maintenance", retry_after=9), KeyError("bug")],
)
async def test_a_failing_lookup_is_unavailable_and_not_cached(failure: BaseException) -> None:
    lookups = Lookups()
    lookups.fail_with = failure
    tenants = cache(lookups)
    with pytest.raises(TenantUnavailable) as unavailable:
        await tenants.get(principal("alice"))
    assert unavailable.value.retry_after == (9 if isinstance(failure, TenantUnavailable) else 2)
    assert tenants.failures == 1
    lookups.fail_with = None
    assert (await tenants.get(principal("alice"))).name == "alice"
    assert lookups.calls[(ISSUER, "alice")] == 2


async def test_a_lookup_that_outlasts_the_timeout_is_unavailable() -> None:
    lookups = Lookups()
    lookups.gate = asyncio.Event()  # never set: the lookup hangs
    tenants = cache(lookups, timeout=0.05)
    with pytest.raises(TenantUnavailable):
        await tenants.get(principal("alice"))
    assert len(tenants) == 0


async def test_a_revocation_drops_that_principals_records_only() -> None:
    lookups = Lookups()
    tenants = cache(lookups)
    feed = RevocationFeed()
    feed.subscribe(tenants.invalidate)
    for who in (principal("alice"), principal("bob"), principal("alice", issuer=None)):
        await tenants.get(who)
    feed.revoked(ISSUER, "alice")
    assert tenants.invalidations == 1
    for who in (principal("alice"), principal("bob"), principal("alice", issuer=None)):
        await tenants.get(who)
    assert lookups.calls == {(ISSUER, "alice"): 2, (ISSUER, "bob"): 1, (None, "alice"): 1}


async def test_a_lookup_in_flight_when_its_principal_is_revoked_is_not_cached() -> None:
    lookups = Lookups()
    lookups.gate = asyncio.Event()
    tenants = cache(lookups)
    running = asyncio.ensure_future(tenants.get(principal("alice")))
    await asyncio.sleep(0)
    tenants.invalidate(ISSUER, "alice")
    lookups.gate.set()
    assert (await running).name == "alice"  # its waiter was already authenticated: it gets the answer
    assert len(tenants) == 0
    await tenants.get(principal("alice"))
    assert lookups.calls[(ISSUER, "alice")] == 2


def test_keys_are_tuples_so_no_two_principals_collide() -> None:
    pairs = [
        (principal("b:c", issuer="https://a"), principal("c", issuer="https://a:b")),
        (principal("alice", issuer=None), principal("alice", issuer=ISSUER)),
        (principal("x|y", issuer="i"), principal("y", issuer="i|x")),
    ]
    for one, other in pairs:
        assert tenant_key(one) != tenant_key(other)


async def test_principals_whose_joined_names_collide_get_their_own_records() -> None:
    lookups = Lookups()
    tenants = cache(lookups)
    one = await tenants.get(principal("b:c", issuer="https://a"))
    other = await tenants.get(principal("c", issuer="https://a:b"))
    assert one.name == "b:c"
    assert other.name == "c"
