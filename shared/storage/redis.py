"""`Store` on Redis, for several workers or replicas sharing state.

Three topologies, one behaviour (`tests/integration/test_storage_contract.py` runs the same suite on
each): one server (`redis://`), a primary watched by Sentinel (`redis+sentinel://`: the client asks
the sentinels where the primary is on every new connection, so a failover needs no restart), and a
Redis Cluster (`redis+cluster://`: keys spread over the primaries by hash slot). REDIS_URL's forms
are in `shared/storage/redis_url.py`; docs/operations.md covers running each.

Key layout: the protocol's key is used verbatim after `key_prefix` (`<prefix><key>`); the prefix
is not followed by an implicit separator, so pass e.g. "mcpref:" to share one Redis between
deployments. Strings, hashes and sets are the native Redis types under that one key, expiring
indexes sorted sets (Redis 6.2 or newer: ZADD GT, ZRANGE BYSCORE); nothing else is written.
Every script touches one key, so it is valid on a cluster; `delete` of keys in several hash
slots is sent slot by slot (atomic per slot, not across slots); keys that must go together carry
one hash tag (`shared.storage.base.same_slot`).

Every Redis failure leaves this module as a project exception: connection problems, timeouts,
"no primary known" during a failover and server-side refusals (LOADING, READONLY, CLUSTERDOWN,
OOM...) become `StorageUnavailable` (callers answer 503); WRONGTYPE becomes TypeError and a
non-integer counter ValueError, matching `MemoryStore`.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any, cast

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialBackoff
from redis.exceptions import (
    ClusterCrossSlotError,
    CrossSlotTransactionError,
    RedisClusterException,
    RedisError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError

from shared.storage.base import StorageUnavailable
from shared.storage.redis_url import parse_redis_url

if TYPE_CHECKING:
    from shared.settings import Settings

# One retry is enough to replace a pooled connection that died with a Redis restart, or to ask
# the sentinels again once a failover has moved the primary; more would only delay the 503 while
# Redis is really down. Only a broken connection is retried, not a timeout: a Redis that accepts
# connections but does not answer (hung, paused) would otherwise cost every attempt its own
# timeout before the 503 (tests/resilience/test_redis_faults.py).
_RETRY = Retry(ExponentialBackoff(cap=0.2, base=0.05), retries=1, supported_errors=(RedisConnectionError,))
_SOCKET_TIMEOUT = 2.0
_HEALTH_CHECK_INTERVAL = 10  # seconds idle before a pooled connection is PINGed on checkout
# Sentinels are asked in turn until one names a healthy primary: a hung one must not hold the
# question for long (they answer from memory, in well under a millisecond).
_SENTINEL_TIMEOUT = 0.5
# How often a Sentinel store asks whether the primary has moved while nothing broke (see
# _FollowingSentinelPool); also the longest it reads from a demoted primary after a switch-over.
_FOLLOW_PRIMARY_EVERY = 1.0
_CLIENT_NAME = "mcp-reference-server"  # in CLIENT LIST, so an operator sees whose connections they are

logger = logging.getLogger(__name__)

# Scripts make read-modify-write steps atomic on the server (redis-py reloads them on NOSCRIPT,
# e.g. after a restart emptied the script cache).
_INCR = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"""
# PTTL before the add: -2 = new set (gets the ttl), -1 = existing set without expiry (already
# lives "at least ttl", left alone), otherwise extend only if the new expiry is later.
_SADD_WITH_TTL = """
local before = redis.call('PTTL', KEYS[1])
for i = 2, #ARGV do redis.call('SADD', KEYS[1], ARGV[i]) end
if before == -2 or (before >= 0 and before < tonumber(ARGV[1])) then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return 0
"""

# Expiring indexes are sorted sets scored by expiry time in Unix milliseconds of the Redis server's
# clock (TIME), so every instance agrees on "now" whatever its own clock says. One key per script
# (valid on Redis Cluster). ZADD GT extends a member's expiry, never shortens it.
_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""
_INDEX_ADD = (
    _NOW_MS
    + """
local member, limit = ARGV[2], tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], 'GT', now + tonumber(ARGV[1]), member)
local evicted = {}
local excess = limit >= 0 and redis.call('ZCARD', KEYS[1]) - limit or 0
if excess > 0 then
  for _, name in ipairs(redis.call('ZRANGE', KEYS[1], 0, excess)) do
    if name ~= member and #evicted < excess then evicted[#evicted + 1] = name end
  end
  redis.call('ZREM', KEYS[1], unpack(evicted))
end
redis.call('PEXPIREAT', KEYS[1], redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2])
return evicted
"""
)
_INDEX_REMOVE = (
    _NOW_MS
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZREM', KEYS[1], unpack(ARGV))
"""
)
_INDEX_MEMBERS = (
    _NOW_MS
    + """
local found = redis.call('ZRANGE', KEYS[1], '(' .. now, '+inf', 'BYSCORE', 'WITHSCORES')
for i = 2, #found, 2 do found[i] = tostring(tonumber(found[i]) - now) end
return found
"""
)


def _milliseconds(ttl: float) -> int:
    """Seconds (possibly fractional) to the whole milliseconds PX/PEXPIRE take; never 0."""
    if not math.isfinite(ttl) or ttl <= 0:
        raise ValueError(f"ttl must be a positive number of seconds, got {ttl!r}")
    return max(1, round(ttl * 1000))


def _translate(exc: Exception) -> Exception:
    message = str(exc)
    if isinstance(exc, ClusterCrossSlotError | CrossSlotTransactionError):
        # A bug, not an outage: the keys of one script or transaction must share a hash tag.
        return RuntimeError(f"redis cluster: keys in different hash slots: {message}")
    if isinstance(exc, ResponseError):
        if message.startswith("WRONGTYPE"):
            return TypeError(message)
        if "not an integer" in message:
            return ValueError(message)
    return StorageUnavailable(f"redis: {type(exc).__name__}: {message}")


@contextmanager
def _redis_errors() -> Iterator[None]:
    try:
        yield
    except (RedisError, RedisClusterException, OSError) as exc:  # OSError: a socket error redis-py
        raise _translate(exc) from exc  # did not wrap; RedisClusterException: no node answered


class _FollowingSentinelPool(SentinelConnectionPool):
    """A Sentinel connection pool that also follows a primary that moved without breaking anything.

    redis-py asks the sentinels for the primary when it opens a connection; a crashed primary
    breaks its connections, and on a switch-over the sentinels close the clients of the node they
    demote, so both are followed at once. Not a network split: when the sentinels lose sight of
    the primary but we do not, they promote a replica, our connections stay up and nobody tells
    the old primary, so we would keep writing to it, and lose those writes when it rejoins as a
    replica. So, at most every `_FOLLOW_PRIMARY_EVERY` seconds and in the background (no request
    waits for it), the pool asks the sentinels; when the answer changed, idle connections are
    closed and busy ones as they come back, never under a command in flight (it could run twice).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self._primary: Any = None  # (host, port) the last check found
        self._next_check = 0.0
        self._check: asyncio.Task[None] | None = None

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        now = time.monotonic()
        if now >= self._next_check and (self._check is None or self._check.done()):
            self._next_check = now + _FOLLOW_PRIMARY_EVERY
            self._check = asyncio.get_running_loop().create_task(self._check_primary())
        return await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]

    async def _check_primary(self) -> None:
        try:
            primary = await self.sentinel_manager.discover_master(self.service_name)
        except (RedisError, OSError):
            return  # no sentinel knows a primary (a failover is under way): commands will say so
        if self._primary is not None and primary != self._primary:
            logger.warning("the Redis primary moved to %s:%s; reconnecting", *primary)
            self.master_address = primary
            await self.disconnect(inuse_connections=False)
            await self.update_active_connections_for_reconnect()  # type: ignore[no-untyped-call]
        self._primary = primary

    async def stop_following(self) -> None:
        if self._check is not None:
            self._check.cancel()
            with suppress(asyncio.CancelledError):
                await self._check


class RedisStore:
    def __init__(
        self, client: Redis | RedisCluster, key_prefix: str = "", *, sentinel: Sentinel | None = None
    ) -> None:
        """`client` must use decode_responses=True; prefer `from_settings` or `from_url`.
        `sentinel`, when the client's connections come from one, is closed with the store."""
        self._redis = client
        self._prefix = key_prefix
        self._sentinel = sentinel
        self._incr = client.register_script(_INCR)
        self._sadd_with_ttl = client.register_script(_SADD_WITH_TTL)
        self._index_add = client.register_script(_INDEX_ADD)
        self._index_members = client.register_script(_INDEX_MEMBERS)
        self._index_remove = client.register_script(_INDEX_REMOVE)

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisStore:
        assert settings.redis_url, "RedisStore needs REDIS_URL"
        return cls.from_url(
            settings.redis_url,
            key_prefix=settings.redis_key_prefix,
            sentinel_password=settings.redis_sentinel_password,
        )

    @classmethod
    def from_url(cls, url: str, key_prefix: str = "", *, sentinel_password: str | None = None) -> RedisStore:
        """A store on any REDIS_URL topology, with timeouts short enough that an outage turns into
        a prompt 503, and pooled connections that are health-checked so a Redis restart, or a
        failover, heals without an app restart."""
        location = parse_redis_url(url)
        options: dict[str, Any] = {
            "decode_responses": True,
            "socket_timeout": _SOCKET_TIMEOUT,
            "socket_connect_timeout": _SOCKET_TIMEOUT,
            "health_check_interval": _HEALTH_CHECK_INTERVAL,
            "retry": _RETRY,
        }
        credentials: dict[str, Any] = {"username": location.username, "password": location.password}
        if location.topology == "sentinel":
            sentinel = Sentinel(
                location.nodes,
                sentinel_kwargs={
                    "password": sentinel_password,
                    "socket_timeout": _SENTINEL_TIMEOUT,
                    "socket_connect_timeout": _SENTINEL_TIMEOUT,
                },
            )
            primary = sentinel.master_for(
                location.service_name,
                connection_pool_class=_FollowingSentinelPool,
                db=location.db,
                client_name=_CLIENT_NAME,
                **credentials,
                **options,
            )
            return cls(primary, key_prefix, sentinel=sentinel)
        if location.topology == "cluster":
            nodes = [ClusterNode(host, port) for host, port in location.nodes]
            cluster = RedisCluster(startup_nodes=nodes, client_name=_CLIENT_NAME, **credentials, **options)
            return cls(cluster, key_prefix)
        return cls(Redis.from_url(url, client_name=_CLIENT_NAME, **options), key_prefix)

    def _k(self, key: str) -> str:
        return self._prefix + key

    # -- strings ---------------------------------------------------------------------------

    async def get(self, key: str) -> str | None:
        with _redis_errors():
            value = cast(str | None, await self._redis.get(self._k(key)))
        return value

    async def set(
        self, key: str, value: str, ttl: float | None = None, *, only_if_absent: bool = False
    ) -> bool:
        px = None if ttl is None else _milliseconds(ttl)
        with _redis_errors():
            stored: Any = await self._redis.set(self._k(key), value, px=px, nx=only_if_absent)
        return bool(stored)

    async def delete(self, *keys: str) -> int:
        if not keys:
            return 0
        with _redis_errors():
            removed: int = await self._redis.delete(*(self._k(key) for key in keys))
        return removed

    async def take(self, key: str) -> str | None:
        with _redis_errors():
            value = cast(str | None, await self._redis.getdel(self._k(key)))
        return value

    async def incr(self, key: str, ttl: float) -> int:
        ms = _milliseconds(ttl)
        with _redis_errors():
            count: Any = await self._incr(keys=[self._k(key)], args=[ms])
        return int(count)

    async def ttl(self, key: str) -> float | None:
        with _redis_errors():
            ms: int = await self._redis.pttl(self._k(key))
        return None if ms < 0 else ms / 1000  # -2: absent, -1: no expiry

    async def expire(self, key: str, ttl: float) -> bool:
        with _redis_errors():
            return bool(await self._redis.pexpire(self._k(key), _milliseconds(ttl)))

    # -- hashes ----------------------------------------------------------------------------

    async def hset(self, key: str, field: str, value: str) -> None:
        with _redis_errors():
            await self._redis.hset(self._k(key), field, value)

    async def hget(self, key: str, field: str) -> str | None:
        with _redis_errors():
            value = cast(str | None, await self._redis.hget(self._k(key), field))
        return value

    async def hgetall(self, key: str) -> dict[str, str]:
        with _redis_errors():
            fields = cast(dict[str, str], await self._redis.hgetall(self._k(key)))
        return fields

    async def hdel(self, key: str, field: str) -> bool:
        with _redis_errors():
            removed: int = await self._redis.hdel(self._k(key), field)
        return removed > 0

    # -- sets ------------------------------------------------------------------------------

    async def sadd(self, key: str, *members: str, ttl: float | None = None) -> None:
        ms = None if ttl is None else _milliseconds(ttl)
        if not members:  # SADD needs at least one member; adding nothing changes nothing
            return
        with _redis_errors():
            if ms is None:
                await self._redis.sadd(self._k(key), *members)
            else:
                await self._sadd_with_ttl(keys=[self._k(key)], args=[ms, *members])

    async def smembers(self, key: str) -> builtins.set[str]:
        with _redis_errors():
            members = cast(builtins.set[str], await self._redis.smembers(self._k(key)))
        return members

    async def srem(self, key: str, *members: str) -> int:
        if not members:
            return 0
        with _redis_errors():
            removed: int = await self._redis.srem(self._k(key), *members)
        return removed

    # -- expiring indexes ------------------------------------------------------------------

    async def index_add(self, key: str, member: str, ttl: float, *, limit: int | None = None) -> list[str]:
        args: list[str | int] = [_milliseconds(ttl), member, -1 if limit is None else limit]
        with _redis_errors():
            evicted: Any = await self._index_add(keys=[self._k(key)], args=args)
        return list(evicted)

    async def index_members(self, key: str) -> dict[str, float]:
        with _redis_errors():
            found: Any = await self._index_members(keys=[self._k(key)])
        return {found[i]: int(found[i + 1]) / 1000 for i in range(0, len(found), 2)}

    async def index_remove(self, key: str, *members: str) -> int:
        if not members:
            return 0
        with _redis_errors():
            removed: Any = await self._index_remove(keys=[self._k(key)], args=list(members))
        return int(removed)

    # -- lifecycle -------------------------------------------------------------------------

    async def drop_expired(self) -> int:
        """Nothing to do: Redis expires keys itself (see `Store.drop_expired`)."""
        return 0

    async def ping(self) -> bool:
        """Readiness: False rather than an exception when Redis does not answer."""
        try:
            with _redis_errors():
                return bool(await self._redis.ping())
        except StorageUnavailable:
            return False

    async def close(self) -> None:
        with _redis_errors():
            if isinstance(self._redis, RedisCluster):
                await self._redis.aclose()
            else:
                if isinstance(self._redis.connection_pool, _FollowingSentinelPool):
                    await self._redis.connection_pool.stop_following()
                await self._redis.aclose(close_connection_pool=True)
            if self._sentinel is not None:
                await self._sentinel.aclose()
