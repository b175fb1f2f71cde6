"""The parts of `shared.dpop` whose rules are easiest to see one at a time: `htu` normalisation
(RFC 3986 section 6), nonce windows (RFC 9449 sections 8 and 9) and the bounded replay set
(section 11.1). The proof checks as a whole are exercised over HTTP in tests/integration/rs and
tests/security/test_dpop_attacks.py."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from shared.dpop import ProofRejected, ProofVerifier
from shared.dpop.nonces import LIFETIME, DPoPNonces, Freshness
from shared.dpop.replay import LocalReplayGuard, StoreReplayGuard
from shared.dpop.target import normalise
from shared.settings import Settings
from shared.storage.memory import MemoryStore
from tests.fixtures.dpop_client import DPoPKey


@pytest.mark.parametrize(
    ("uri", "normal"),
    [
        ("https://mcp.example.com/mcp", "https://mcp.example.com/mcp"),
        ("HTTPS://MCP.Example.COM/mcp", "https://mcp.example.com/mcp"),
        ("https://mcp.example.com:443/mcp", "https://mcp.example.com/mcp"),
        ("http://mcp.example.com:80/mcp", "http://mcp.example.com/mcp"),
        ("http://mcp.example.com:443/mcp", "http://mcp.example.com:443/mcp"),
        ("http://127.0.0.1:3232/mcp", "http://127.0.0.1:3232/mcp"),
        ("http://[::1]:3232/mcp", "http://[::1]:3232/mcp"),
        ("http://h", "http://h/"),
        ("http://h:/mcp", "http://h/mcp"),
        ("http://h/a/./b/../mcp", "http://h/a/mcp"),
        ("http://h/%6dcp", "http://h/mcp"),
        ("http://h/a%2fb", "http://h/a%2Fb"),
        ("http://h/%2E%2E/mcp", "http://h/mcp"),
    ],
)
def test_equivalent_uris_normalise_to_one_form(uri: str, normal: str) -> None:
    assert normalise(uri) == normal


@pytest.mark.parametrize(
    "uri",
    [
        "http://h/mcp?x=1",
        "http://h/mcp#f",
        "http://user@h/mcp",
        "ftp://h/mcp",
        "/mcp",
        "http:///mcp",
        "http://h:99999/mcp",
        "http://h:port/mcp",
        "http://h/ mcp",
        "http://h/\u00e9",
        "http://h/" + "a" * 3000,
    ],
)
def test_what_is_not_an_acceptable_target_uri_normalises_to_nothing(uri: str) -> None:
    assert normalise(uri) is None


def test_paths_that_differ_stay_different() -> None:
    assert normalise("http://h/mcp") != normalise("http://h/mcp/")
    assert normalise("http://h/mcp") != normalise("http://h/MCP")


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_a_nonce_is_current_in_its_window_renewed_in_the_next_and_stale_after() -> None:
    clock = Clock(1_000 * LIFETIME + 10)
    store = MemoryStore()
    nonces = DPoPNonces(store, purpose="resource", clock=clock)
    value = await nonces.current()
    assert await nonces.freshness(value) is Freshness.CURRENT
    clock.now += LIFETIME
    assert await nonces.freshness(value) is Freshness.RENEW
    assert await nonces.current() != value
    clock.now += LIFETIME
    assert await nonces.freshness(value) is Freshness.STALE


async def test_nonces_are_shared_by_instances_on_one_store_but_not_between_purposes() -> None:
    clock = Clock(5_000.0)
    store = MemoryStore()
    one = DPoPNonces(store, purpose="resource", clock=clock)
    other_instance = DPoPNonces(store, purpose="resource", clock=clock)
    token_endpoint = DPoPNonces(store, purpose="token", clock=clock)
    elsewhere = DPoPNonces(MemoryStore(), purpose="resource", clock=clock)
    value = await one.current()
    assert await other_instance.freshness(value) is Freshness.CURRENT
    assert await token_endpoint.freshness(value) is Freshness.STALE
    assert await elsewhere.freshness(value) is Freshness.STALE


@pytest.mark.parametrize("nonce", [None, 7, "", "short", "A" * 32, "!" * 32, "A" * 400])
async def test_anything_but_an_issued_nonce_is_stale(nonce: object) -> None:
    nonces = DPoPNonces(MemoryStore(), purpose="token")
    assert await nonces.freshness(nonce) is Freshness.STALE


async def test_the_local_replay_set_refuses_a_second_use_until_the_proof_expires() -> None:
    clock = Clock(100.0)
    guard = LocalReplayGuard(capacity=10, clock=clock)
    assert await guard.first_use("key", "jti-1", until=150.0)
    assert not await guard.first_use("key", "jti-1", until=150.0)
    assert await guard.first_use("another key", "jti-1", until=150.0)  # scoped by key
    clock.now = 151.0
    assert await guard.first_use("key", "jti-1", until=400.0)  # expired: no longer a replay risk


async def test_a_full_replay_set_refuses_what_it_had_to_forget_instead_of_accepting_it() -> None:
    clock = Clock(0.0)
    guard = LocalReplayGuard(capacity=3, clock=clock)
    for n in range(3):
        assert await guard.first_use("key", f"jti-{n}", until=100.0 + n)
    assert await guard.first_use("key", "jti-3", until=200.0)  # evicts jti-0 (until 100)
    assert len(guard) == 3
    assert not await guard.first_use("key", "jti-0", until=100.0)  # forgotten, yet refused
    assert not await guard.first_use("key", "never-seen", until=99.0)  # older than the horizon
    assert await guard.first_use("key", "new", until=300.0)


async def test_a_replay_set_kept_full_by_a_stream_of_proofs_stays_bounded_and_refuses_every_replay() -> None:
    # The steady state under load: every new proof evicts (or outlives) the oldest, round after round.
    clock = Clock(0.0)
    guard = LocalReplayGuard(capacity=50, clock=clock)
    for n in range(1000):
        clock.now = n / 10
        assert await guard.first_use("key", f"jti-{n}", until=clock.now + 30)
        assert not await guard.first_use("key", f"jti-{n}", until=clock.now + 30)
        assert len(guard) <= 50
    assert not await guard.first_use("key", "jti-0", until=30.0)  # long evicted, still refused
    assert await guard.first_use("key", "fresh", until=clock.now + 30)


async def test_the_store_replay_guard_is_shared_through_the_store() -> None:
    store = MemoryStore()
    assert await StoreReplayGuard(store).first_use("key", "jti", until=10**10)
    assert not await StoreReplayGuard(store).first_use("key", "jti", until=10**10)


class CountingMemoryStore(MemoryStore):
    """The in-memory Store, counting every call a DPoP check makes of it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __getattribute__(self, name: str) -> Any:
        attribute = super().__getattribute__(name)
        if not name.startswith("_") and inspect.iscoroutinefunction(attribute):
            super().__getattribute__("calls").append(name)
        return attribute


async def test_with_the_memory_store_checking_and_spending_proofs_makes_no_store_call() -> None:
    # The hot path of internal mode: a proof per request, and not one Store round trip for it.
    store = CountingMemoryStore()
    verifier = ProofVerifier.from_settings(Settings(_env_file=None), store, purpose="resource")  # type: ignore[call-arg]
    key = DPoPKey.generate()
    url = "http://127.0.0.1:3232/mcp"
    proofs = [key.proof("POST", url, token="the-token") for _ in range(50)]
    for proof in proofs:
        await verifier.consume(await verifier.verify(proof, method="POST", url=url, access_token="the-token"))
    assert store.calls == []
    replayed = await verifier.verify(proofs[0], method="POST", url=url, access_token="the-token")
    with pytest.raises(ProofRejected):
        await verifier.consume(replayed)
    assert store.calls == []
