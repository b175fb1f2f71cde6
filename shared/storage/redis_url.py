"""What REDIS_URL names: one Redis server, a primary watched by Sentinel, or a Redis Cluster.

    redis://[[user]:password@]host[:port][/db]       one server (rediss:// for TLS, unix:// for a socket)
    redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service[/db]
    redis+cluster://[[user]:password@]host[:port][,host[:port]...]

Sentinel: the hosts are the sentinels (port 26379 by default), `service` is the name they monitor
the primary under (`sentinel monitor <service> ...`). Cluster: the hosts are seed nodes (port 6379
by default; any reachable one reveals the rest), and there is only database 0. The credentials in
the URL are those of the Redis data nodes; sentinels with their own `requirepass` take
REDIS_SENTINEL_PASSWORD. Percent-encode `@ : / ,` in a password.

Parsed at start-up (`shared/settings.py`), so a bad value stops the process with one line that
names what is wrong; no message here repeats the URL, which may hold a password.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import unquote, urlsplit

Topology = Literal["standalone", "sentinel", "cluster"]

SENTINEL_SCHEME = "redis+sentinel"
CLUSTER_SCHEME = "redis+cluster"
_STANDALONE_SCHEMES = ("redis", "rediss", "unix")
_DEFAULT_PORT = {"sentinel": 26379, "cluster": 6379}
# Error messages never quote the URL or a piece of it: a mistyped one may split inside a password.
_CHECK = "percent-encode @ : / , in the password"
_FORMS = (
    "redis://host:6379/0, redis+sentinel://host:26379,host2:26379/<service>/0 "
    "or redis+cluster://host:6379,host2:6379"
)


@dataclass(frozen=True)
class RedisLocation:
    """Where the data lives. `nodes` are the sentinels or the cluster's seed nodes; a standalone
    URL is handed to redis-py as it is (`url`), with its query options."""

    topology: Topology
    url: str = field(repr=False)  # may hold the password
    nodes: tuple[tuple[str, int], ...] = ()
    service_name: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def parse_redis_url(url: str) -> RedisLocation:
    """The location REDIS_URL names; ValueError with a readable reason for anything else."""
    scheme, separator, _ = url.partition("://")
    scheme = scheme.lower()
    if scheme in ("rediss+sentinel", "rediss+cluster"):
        raise ValueError(
            "TLS to sentinels or cluster nodes is not supported: use redis+sentinel:// or "
            "redis+cluster:// on a private network (rediss:// works for one server)"
        )
    if not separator or scheme not in (*_STANDALONE_SCHEMES, SENTINEL_SCHEME, CLUSTER_SCHEME):
        raise ValueError(f"must be a Redis URL such as {_FORMS}")
    if scheme in _STANDALONE_SCHEMES:
        return _standalone(url)
    topology: Topology = "sentinel" if scheme == SENTINEL_SCHEME else "cluster"
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise ValueError(f"a {scheme}:// URL takes no query string or fragment")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    nodes = tuple(_node(entry, _DEFAULT_PORT[topology]) for entry in hosts.split(","))
    username, password = _credentials(userinfo)
    segments = [unquote(segment) for segment in parts.path.split("/")[1:]]
    if topology == "sentinel":
        if not segments or not segments[0] or len(segments) > 2:
            raise ValueError(
                "a redis+sentinel:// URL names the monitored primary after the hosts: "
                "redis+sentinel://host:26379,host2:26379/<service>[/db]"
            )
        db = _db(segments[1]) if len(segments) == 2 else 0
        return RedisLocation(topology, url, nodes, segments[0], db, username, password)
    if segments not in ([], [""], ["0"]):
        raise ValueError("a Redis Cluster has only database 0: redis+cluster://host:6379,host2:6379")
    return RedisLocation(topology, url, nodes, username=username, password=password)


def _standalone(url: str) -> RedisLocation:
    from redis.asyncio.connection import parse_url  # the parser redis-py itself applies

    if "," in urlsplit(url).netloc.rpartition("@")[2]:
        raise ValueError(
            "several hosts need a topology: redis+sentinel://... (Sentinel) or redis+cluster://... (Cluster)"
        )
    try:
        options = parse_url(url)
    except ValueError:  # its messages may quote a piece of a mistyped password
        raise ValueError(f"is not a valid Redis URL ({_CHECK})") from None
    return RedisLocation("standalone", url, db=int(options.get("db") or 0))


def _node(entry: str, default_port: int) -> tuple[str, int]:
    host, port_text = entry, ""
    if entry.startswith("["):  # [IPv6]:port
        host, _, rest = entry[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ValueError(f"a host is not host[:port] ({_CHECK})")
        port_text = rest[1:]
    elif ":" in entry:
        host, _, port_text = entry.rpartition(":")
    if not host:
        raise ValueError(f"every host in the list needs a name, as in host1:26379,host2:26379 ({_CHECK})")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"a port is not a number from 1 to 65535 ({_CHECK})")
    return host, int(port_text)


def _credentials(userinfo: str) -> tuple[str | None, str | None]:
    if not userinfo:
        return None, None
    user, has_password, password = userinfo.partition(":")
    return (unquote(user) or None), (unquote(password) if has_password and password else None)


def _db(text: str) -> int:
    if not text.isdigit():
        raise ValueError("the database after the service name must be a number, as in /mymaster/0")
    return int(text)
