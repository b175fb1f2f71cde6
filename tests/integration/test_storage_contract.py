"""One behaviour contract for every `Store`: each test runs against MemoryStore and against
RedisStore on each Redis topology REDIS_URL can name (a real redis-server alone, a primary behind
three real sentinels, a real three-primary Redis Cluster), so none can drift from the others."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from redis import Redis as SyncRedis
from redis.crc import key_slot
from redis.exceptions import RedisClusterException, RedisError

from shared.storage.base import StorageUnavailable, Store, same_slot
from shared.storage.memory import MemoryStore
from shared.storage.redis import RedisStore

if TYPE_CHECKING:
    from tests.fixtures.redis_topologies import RedisClusterDeployment

# The fixture modules (tests/fixtures/redis_server.py, redis_topologies.py) are plugins registered by
# tests/conftest.py; their helpers are imported inside the tests that use them (or for types only):
# importing them here, before pytest registers them, would stop pytest from rewriting their asserts.

SHORT = 0.2  # seconds; long enough to act before expiry, short enough to keep the suite fast
PAST_SHORT = 0.3


def unique_prefix() -> str:
    return f"test:{uuid.uuid4().hex}:"


REDIS_TOPOLOGIES = ["redis", "sentinel", "cluster"]


def redis_store(request: pytest.FixtureRequest, topology: str, key_prefix: str) -> RedisStore:
    """A RedisStore on the session's deployment of `topology`, opened from its REDIS_URL."""
    if topology == "redis":
        return RedisStore.from_url(request.getfixturevalue("redis_url"), key_prefix=key_prefix)
    if topology == "sentinel":
        sentinel = request.getfixturevalue("redis_sentinel")
        return RedisStore.from_url(sentinel.url, key_prefix, sentinel_password=sentinel.sentinel_password)
    return RedisStore.from_url(request.getfixturevalue("redis_cluster").url, key_prefix)


class ManualClock:
    """MemoryStore's clock, moved by the test: expiry in memory needs no waiting."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(params=["memory", *REDIS_TOPOLOGIES])
async def store(request: pytest.FixtureRequest, clock: ManualClock) -> AsyncIterator[Store]:
    backend: Store
    if request.param == "memory":
        backend = MemoryStore(clock=clock)
    else:
        backend = redis_store(request, request.param, unique_prefix())
    yield backend
    await backend.close()


Elapse = Callable[[float], Awaitable[None]]


@pytest.fixture
def elapse(store: Store, clock: ManualClock) -> Elapse:
    """`await elapse(seconds)`: let that much time pass for the store. MemoryStore's clock is moved;
    Redis expires keys by its own clock, which nothing but real time moves, so there it is a real
    wait (the expiry is the behaviour under test)."""

    async def elapse(seconds: float) -> None:
        if isinstance(store, MemoryStore):
            clock.now += seconds
        else:
            await asyncio.sleep(seconds)

    return elapse


# -- strings ---------------------------------------------------------------------------------


async def test_get_returns_what_set_stored_and_none_for_unknown_keys(store: Store) -> None:
    assert await store.set("k", "v") is True
    assert await store.get("k") == "v"
    assert await store.get("unknown") is None


async def test_set_overwrites_by_default(store: Store) -> None:
    await store.set("k", "old")
    assert await store.set("k", "new") is True
    assert await store.get("k") == "new"


async def test_set_only_if_absent_refuses_to_overwrite(store: Store) -> None:
    assert await store.set("k", "first", only_if_absent=True) is True
    assert await store.set("k", "second", only_if_absent=True) is False
    assert await store.get("k") == "first"


async def test_keys_expire_after_their_ttl(store: Store, elapse: Elapse) -> None:
    await store.set("short", "v", ttl=SHORT)
    await store.set("long", "v", ttl=10)
    assert await store.get("short") == "v"
    await elapse(PAST_SHORT)
    assert await store.get("short") is None
    assert await store.take("short") is None
    assert await store.ttl("short") is None
    assert await store.get("long") == "v"


async def test_set_only_if_absent_succeeds_once_the_old_value_expired(store: Store, elapse: Elapse) -> None:
    await store.set("k", "old", ttl=SHORT)
    await elapse(PAST_SHORT)
    assert await store.set("k", "new", only_if_absent=True) is True
    assert await store.get("k") == "new"


async def test_set_without_ttl_clears_an_existing_ttl(store: Store, elapse: Elapse) -> None:
    await store.set("k", "v", ttl=SHORT)
    await store.set("k", "w")
    assert await store.ttl("k") is None
    await elapse(PAST_SHORT)
    assert await store.get("k") == "w"


async def test_ttl_reports_fractional_seconds_left_or_none(store: Store) -> None:
    await store.set("expiring", "v", ttl=1.5)
    await store.set("forever", "v")
    left = await store.ttl("expiring")
    assert left is not None
    assert 1.3 < left <= 1.5
    assert await store.ttl("forever") is None
    assert await store.ttl("absent") is None


@pytest.mark.parametrize("ttl", [0, -1, float("nan")])
async def test_non_positive_ttls_are_rejected(store: Store, ttl: float) -> None:
    with pytest.raises(ValueError, match="ttl"):
        await store.set("k", "v", ttl=ttl)
    with pytest.raises(ValueError, match="ttl"):
        await store.incr("n", ttl)
    with pytest.raises(ValueError, match="ttl"):
        await store.sadd("s", "m", ttl=ttl)
    with pytest.raises(ValueError, match="ttl"):
        await store.index_add("i", "m", ttl)
    assert await store.get("k") is None
    assert await store.index_members("i") == {}


async def test_delete_counts_only_the_keys_that_existed(store: Store, elapse: Elapse) -> None:
    await store.set("a", "1")
    await store.hset("h", "f", "v")
    await store.sadd("s", "m")
    await store.set("expired", "v", ttl=SHORT)
    await elapse(PAST_SHORT)
    assert await store.delete("a", "h", "s", "missing", "expired") == 3
    assert await store.delete("a") == 0
    assert await store.delete() == 0
    assert await store.get("a") is None
    assert await store.hgetall("h") == {}
    assert await store.smembers("s") == set()


# -- take ------------------------------------------------------------------------------------


async def test_take_returns_the_value_once_and_removes_it(store: Store) -> None:
    await store.set("code", "secret", ttl=10)
    assert await store.take("code") == "secret"
    assert await store.take("code") is None
    assert await store.get("code") is None


async def test_take_returns_the_value_to_exactly_one_of_many_concurrent_callers(store: Store) -> None:
    # Warm up first: callers that each still had to open a Redis connection would arrive one by
    # one, and then even a non-atomic GET + DEL would look correct.
    await asyncio.gather(*(store.take("warm-up") for _ in range(100)))
    await store.set("code", "secret")
    results = await asyncio.gather(*(store.take("code") for _ in range(100)))
    assert [r for r in results if r is not None] == ["secret"]


# -- counters --------------------------------------------------------------------------------


async def test_incr_counts_up_from_one(store: Store) -> None:
    assert [await store.incr("n", 10) for _ in range(3)] == [1, 2, 3]
    assert await store.get("n") == "3"


async def test_incr_starts_the_window_on_the_first_increment(store: Store, elapse: Elapse) -> None:
    window = 0.5
    assert await store.incr("n", window) == 1
    await elapse(0.15)
    assert await store.incr("n", window) == 2  # must not push the window's end out
    left = await store.ttl("n")
    assert left is not None
    assert left <= window - 0.1
    await elapse(0.4)
    assert await store.incr("n", window) == 1  # a fresh window


async def test_concurrent_increments_are_never_lost(store: Store) -> None:
    results = await asyncio.gather(*(store.incr("n", 10) for _ in range(100)))
    assert sorted(results) == list(range(1, 101))
    left = await store.ttl("n")
    assert left is not None
    assert left > 9


async def test_incr_of_a_non_integer_value_raises_value_error(store: Store) -> None:
    await store.set("n", "not a number")
    with pytest.raises(ValueError, match="integer"):
        await store.incr("n", 10)


# -- hashes ----------------------------------------------------------------------------------


async def test_hash_fields_are_stored_read_and_listed(store: Store) -> None:
    await store.hset("user", "name", "ada")
    await store.hset("user", "role", "admin")
    await store.hset("user", "role", "owner")
    assert await store.hget("user", "name") == "ada"
    assert await store.hget("user", "missing") is None
    assert await store.hget("nobody", "name") is None
    assert await store.hgetall("user") == {"name": "ada", "role": "owner"}
    assert await store.hgetall("nobody") == {}


async def test_hdel_reports_whether_the_field_existed_and_an_emptied_hash_disappears(store: Store) -> None:
    await store.hset("user", "name", "ada")
    await store.hset("user", "role", "admin")
    assert await store.hdel("user", "role") is True
    assert await store.hdel("user", "role") is False
    assert await store.hgetall("user") == {"name": "ada"}
    assert await store.hdel("user", "name") is True
    assert await store.delete("user") == 0  # no empty hash left behind
    assert await store.hdel("nobody", "name") is False


# -- sets ------------------------------------------------------------------------------------


async def test_expire_gives_a_hash_a_ttl_and_refuses_absent_keys(store: Store, elapse: Elapse) -> None:
    await store.hset("h", "a", "1")
    assert await store.expire("h", 0.2) is True
    assert await store.hget("h", "a") == "1"
    await store.hset("h", "b", "2")  # writing a field keeps the hash's expiry
    remaining = await store.ttl("h")
    assert remaining is not None
    assert remaining <= 0.2
    await elapse(0.3)
    assert await store.hgetall("h") == {}
    assert await store.expire("absent", 1) is False


async def test_sadd_accumulates_distinct_members(store: Store) -> None:
    await store.sadd("grants", "a", "b")
    await store.sadd("grants", "b", "c")
    await store.sadd("grants")
    assert await store.smembers("grants") == {"a", "b", "c"}
    assert await store.smembers("none") == set()


async def test_a_set_with_a_ttl_expires(store: Store, elapse: Elapse) -> None:
    await store.sadd("grants", "a", ttl=SHORT)
    await store.sadd("grants", "b")  # without ttl: keeps the expiry
    left = await store.ttl("grants")
    assert left is not None
    assert left <= SHORT
    await elapse(PAST_SHORT)
    assert await store.smembers("grants") == set()


async def test_sadd_with_ttl_extends_but_never_shortens_the_expiry(store: Store, elapse: Elapse) -> None:
    await store.sadd("grants", "a", ttl=SHORT)
    await store.sadd("grants", "b", ttl=10)
    await store.sadd("grants", "c", ttl=SHORT)
    left = await store.ttl("grants")
    assert left is not None
    assert left > 9
    await elapse(PAST_SHORT)
    assert await store.smembers("grants") == {"a", "b", "c"}


async def test_sadd_with_ttl_leaves_a_set_without_expiry_without_expiry(store: Store) -> None:
    await store.sadd("grants", "a")
    await store.sadd("grants", "b", ttl=SHORT)
    assert await store.ttl("grants") is None


async def test_srem_removes_members_and_an_emptied_set_disappears(store: Store) -> None:
    await store.sadd("grants", "a", "b", "c", ttl=10)
    assert await store.srem("grants", "a", "not-a-member") == 1
    assert await store.smembers("grants") == {"b", "c"}
    left = await store.ttl("grants")
    assert left is not None
    assert 9 < left <= 10, "srem keeps the set's expiry"
    assert await store.srem("grants") == 0
    assert await store.srem("grants", "b", "c") == 2
    assert await store.smembers("grants") == set()
    assert await store.set("grants", "a string now") is True  # the key is gone, not an empty set
    assert await store.srem("nobody", "a") == 0


# -- expiring indexes ------------------------------------------------------------------------


async def test_index_members_carry_the_seconds_they_have_left(store: Store) -> None:
    assert await store.index_add("apps", "a", 10) == []
    assert await store.index_add("apps", "b", 100) == []
    members = await store.index_members("apps")
    assert set(members) == {"a", "b"}
    assert 9 < members["a"] <= 10
    assert 99 < members["b"] <= 100
    assert await store.index_members("nobody") == {}


async def test_index_members_expire_one_by_one_and_the_key_with_the_last(
    store: Store, elapse: Elapse
) -> None:
    await store.index_add("apps", "short", SHORT)
    await store.index_add("apps", "long", 10)
    await elapse(PAST_SHORT)
    assert set(await store.index_members("apps")) == {"long"}
    left = await store.ttl("apps")
    assert left is not None
    assert 9 < left <= 10
    await store.index_add("gone", "only", SHORT)
    await elapse(PAST_SHORT)
    assert await store.index_members("gone") == {}
    assert await store.delete("gone") == 0


async def test_index_add_extends_a_members_expiry_but_never_shortens_it(store: Store, elapse: Elapse) -> None:
    await store.index_add("apps", "a", SHORT)
    await store.index_add("apps", "a", 10)
    await store.index_add("apps", "a", SHORT)
    await elapse(PAST_SHORT)
    assert 9 < (await store.index_members("apps"))["a"] <= 10


async def test_index_add_over_the_limit_evicts_the_soonest_expiring_members_but_never_the_new_one(
    store: Store,
) -> None:
    for name, ttl in (("old", 10), ("older", 5), ("recent", 30)):
        assert await store.index_add("apps", name, ttl, limit=3) == []
    assert await store.index_add("apps", "newest", 20, limit=2) == ["older", "old"]
    assert set(await store.index_members("apps")) == {"recent", "newest"}
    assert await store.index_add("apps", "brief", 1, limit=2) == ["newest"]  # brief stays: it was just added
    assert set(await store.index_members("apps")) == {"recent", "brief"}
    assert await store.index_add("apps", "recent", 40, limit=2) == []  # renewing a member evicts nothing


async def test_index_add_drops_expired_members_before_counting_against_the_limit(
    store: Store, elapse: Elapse
) -> None:
    await store.index_add("apps", "expired", SHORT)
    await store.index_add("apps", "live", 10)
    await elapse(PAST_SHORT)
    assert await store.index_add("apps", "new", 10, limit=2) == []
    assert set(await store.index_members("apps")) == {"live", "new"}


async def test_index_remove_counts_live_members_and_an_emptied_index_disappears(
    store: Store, elapse: Elapse
) -> None:
    await store.index_add("apps", "a", 10)
    await store.index_add("apps", "b", 10)
    await store.index_add("apps", "expired", SHORT)
    await elapse(PAST_SHORT)
    assert await store.index_remove("apps", "a", "expired", "unknown") == 1
    assert await store.index_remove("apps") == 0
    assert set(await store.index_members("apps")) == {"b"}
    assert await store.index_remove("apps", "b") == 1
    assert await store.delete("apps") == 0
    assert await store.index_remove("nobody", "a") == 0


# -- types and health ------------------------------------------------------------------------


async def test_using_a_key_as_the_wrong_kind_raises_type_error(store: Store) -> None:
    await store.set("string", "v")
    await store.hset("hash", "f", "v")
    await store.sadd("set", "m")
    await store.index_add("index", "m", 10)
    for wrong in (
        lambda: store.hget("string", "f"),
        lambda: store.hset("set", "f", "v"),
        lambda: store.sadd("hash", "m"),
        lambda: store.smembers("string"),
        lambda: store.get("hash"),
        lambda: store.take("set"),
        lambda: store.incr("hash", 10),
        lambda: store.index_add("hash", "m", 10),
        lambda: store.index_members("set"),
        lambda: store.index_remove("string", "m"),
        lambda: store.hgetall("index"),
        lambda: store.smembers("index"),
    ):
        with pytest.raises(TypeError):
            await wrong()
    assert await store.get("string") == "v"
    assert await store.set("hash", "overwritten") is True  # set replaces any kind, like Redis


async def test_drop_expired_keeps_what_lives_and_what_expired_stays_gone(
    store: Store, elapse: Elapse
) -> None:
    await store.set("gone", "v", ttl=SHORT)
    await store.set("kept", "v", ttl=10)
    await store.set("forever", "v")
    await store.index_add("apps", "short", SHORT)
    await store.index_add("apps", "long", 10)
    await elapse(PAST_SHORT)
    assert await store.drop_expired() >= 0
    assert await store.get("gone") is None
    assert (await store.get("kept"), await store.get("forever")) == ("v", "v")
    assert set(await store.index_members("apps")) == {"long"}
    left = await store.ttl("kept")
    assert left is not None
    assert 9 < left <= 10


async def test_ping_answers_true_when_the_backend_is_up(store: Store) -> None:
    assert await store.ping() is True


# -- backend-specific ------------------------------------------------------------------------


async def test_memory_store_sweeps_expired_keys_nobody_reads_again() -> None:
    now = [0.0]
    store = MemoryStore(clock=lambda: now[0], sweep_every=10, sweep_batch=20)
    for i in range(500):
        await store.set(f"expiring:{i}", "v", ttl=1)
    for i in range(100):
        await store.set(f"live:{i}", "v", ttl=100)
    await store.set("forever", "v")
    assert store.raw_size == 601
    now[0] = 2.0
    for _ in range(300):  # 30 sweeps x 20 keys walk round all 600 keys with a ttl
        await store.set("forever", "v")
    assert store.raw_size == 101
    assert await store.get("live:0") == "v"
    assert await store.ttl("live:99") == pytest.approx(98)


async def test_memory_store_drops_every_expired_key_and_index_member_at_once() -> None:
    now = [0.0]
    store = MemoryStore(clock=lambda: now[0], sweep_every=1_000_000)
    for i in range(50):
        await store.set(f"expiring:{i}", "v", ttl=1)
    await store.set("live", "v", ttl=100)
    await store.index_add("index", "short", 1)
    await store.index_add("index", "long", 100)
    await store.index_add("short-index", "only", 1)
    assert store.raw_size == 53
    now[0] = 2.0
    assert await store.drop_expired() == 52  # 50 keys, the index whose members all expired, a member
    assert store.raw_size == 2
    assert await store.index_members("index") == {"long": 98.0}
    assert await store.drop_expired() == 0


def raw_keys(request: pytest.FixtureRequest, topology: str, pattern: str) -> dict[str, int]:
    """The keys matching `pattern` in the deployment itself (every primary of a cluster), each with
    the port of the server holding it: what the store really wrote, not what it reads back."""
    if topology == "redis":
        server = request.getfixturevalue("redis_server")
        nodes, password = [server.port], None
    elif topology == "sentinel":
        sentinel = request.getfixturevalue("redis_sentinel")
        nodes, password = [sentinel.primary.port], sentinel.password
    else:
        cluster = request.getfixturevalue("redis_cluster")
        nodes, password = [node.port for node in cluster.nodes], cluster.password
    found: dict[str, int] = {}
    for port in nodes:
        with SyncRedis(port=port, password=password, decode_responses=True) as client:
            found.update(dict.fromkeys(client.scan_iter(match=pattern, count=1000), port))
    return found


@pytest.mark.parametrize("topology", REDIS_TOPOLOGIES)
async def test_key_prefix_isolates_redis_stores_sharing_one_redis(
    request: pytest.FixtureRequest, topology: str
) -> None:
    prefix_a, prefix_b = unique_prefix(), unique_prefix()
    a = redis_store(request, topology, prefix_a)
    b = redis_store(request, topology, prefix_b)
    try:
        await a.set("k", "from a")
        await b.set("k", "from b")
        await a.hset("h", "f", "v")
        await a.sadd(f"grant:{same_slot('g1')}", "m", ttl=10)
        assert await a.get("k") == "from a"
        assert await b.get("k") == "from b"
        assert await b.hgetall("h") == {}
        assert await b.delete("h") == 0
        assert sorted(raw_keys(request, topology, f"{prefix_a}*")) == [
            f"{prefix_a}grant:{{g1}}",
            f"{prefix_a}h",
            f"{prefix_a}k",
        ]
    finally:
        await a.close()
        await b.close()


@pytest.mark.parametrize(
    "dead_url",
    [
        "redis://127.0.0.1:{0}/0",
        "redis+sentinel://127.0.0.1:{0},127.0.0.1:{1}/mymaster/0",
        "redis+cluster://127.0.0.1:{0},127.0.0.1:{1}",
    ],
    ids=REDIS_TOPOLOGIES,
)
async def test_unreachable_redis_raises_storage_unavailable_not_a_redis_error(dead_url: str) -> None:
    from tests.fixtures.redis_server import free_port

    store = RedisStore.from_url(dead_url.format(free_port(), free_port()), key_prefix=unique_prefix())
    try:
        started = time.monotonic()
        for operation in (
            lambda: store.get("k"),
            lambda: store.set("k", "v", ttl=1),
            lambda: store.take("k"),
            lambda: store.incr("n", 1),
            lambda: store.sadd("s", "m", ttl=1),
            lambda: store.hgetall("h"),
            lambda: store.delete("a", "b", "c"),
        ):
            with pytest.raises(StorageUnavailable) as caught:
                await operation()
            assert not isinstance(caught.value, RedisError)
            assert isinstance(caught.value.__cause__, RedisError | RedisClusterException | OSError)
        assert await store.ping() is False
        assert time.monotonic() - started < 3
    finally:
        await store.close()


async def test_keys_with_one_same_slot_tag_live_on_one_cluster_node_and_go_in_one_delete(
    request: pytest.FixtureRequest, redis_cluster: RedisClusterDeployment
) -> None:
    prefix = unique_prefix()
    store = redis_store(request, "cluster", prefix)
    tags = [f"grant-{i}" for i in range(30)]
    try:
        for tag in tags:
            await store.set(f"grant:{same_slot(tag)}", "record", ttl=10)
            await store.sadd(f"grant:{same_slot(tag)}:tokens", "a", "b", ttl=10)
        where = raw_keys(request, "cluster", f"{prefix}*")
        for tag in tags:
            record, members = f"{prefix}grant:{{{tag}}}", f"{prefix}grant:{{{tag}}}:tokens"
            assert where[record] == where[members], tag
        assert set(where.values()) == {node.port for node in redis_cluster.nodes}, "the tags did not spread"

        def deletes() -> int:
            total = 0
            for node in redis_cluster.nodes:
                with SyncRedis(port=node.port, password=redis_cluster.password) as client:
                    total += int(client.info("commandstats").get("cmdstat_del", {}).get("calls", 0))
            return total

        before = deletes()
        assert await store.delete(f"grant:{same_slot(tags[0])}", f"grant:{same_slot(tags[0])}:tokens") == 2
        assert deletes() == before + 1, "one tag, one DEL: the grant's keys go at once"
        apart = [f"grant:{same_slot(tag)}" for tag in tags[1:4]]
        assert len({key_slot((prefix + key).encode()) for key in apart}) == 3
        assert await store.delete(*apart) == 3
        assert deletes() == before + 4, "keys in three slots: one DEL per slot"
    finally:
        await store.close()


async def test_redis_store_recovers_when_redis_comes_back_without_reconnecting(tmp_path: Path) -> None:
    from tests.fixtures.redis_server import start_redis

    server = start_redis(tmp_path)
    store = RedisStore.from_url(server.url, key_prefix=unique_prefix())
    try:
        await store.set("k", "before")
        server.stop()
        assert await store.ping() is False
        with pytest.raises(StorageUnavailable):
            await store.get("k")
        server.start()  # same port, data gone (no persistence)
        assert await store.get("k") is None
        assert await store.incr("n", 10) == 1
        assert await store.ping() is True
        server.restart()  # pooled connections die under the store's feet
        assert await store.set("k", "after") is True
        assert await store.get("k") == "after"
    finally:
        await store.close()
        server.stop()
