"""REDIS_URL names one of three topologies; a bad value stops start-up with one readable line
that never repeats the password (shared/storage/redis_url.py, shared/settings.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.settings import SettingsError, load_settings
from shared.storage.base import same_slot
from shared.storage.redis_url import RedisLocation, parse_redis_url

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cret-pw"


def test_a_plain_url_is_one_server_and_keeps_redis_py_options() -> None:
    location = parse_redis_url("rediss://:pw@cache.example:6380/2?socket_keepalive=true")
    assert location.topology == "standalone"
    assert location.db == 2
    assert location.url == "rediss://:pw@cache.example:6380/2?socket_keepalive=true"
    assert parse_redis_url("unix:///run/redis.sock").topology == "standalone"


def test_a_sentinel_url_lists_the_sentinels_the_service_and_the_database() -> None:
    location = parse_redis_url("redis+sentinel://app:p%40ss%2Cword@s1:26380,s2,[::1]:26381/mymaster/3")
    assert location == RedisLocation(
        "sentinel",
        location.url,
        nodes=(("s1", 26380), ("s2", 26379), ("::1", 26381)),
        service_name="mymaster",
        db=3,
        username="app",
        password="p@ss,word",
    )
    assert parse_redis_url("redis+sentinel://s1/cache").db == 0


def test_a_cluster_url_lists_seed_nodes_and_has_only_database_0() -> None:
    location = parse_redis_url("redis+cluster://:pw@n1:7000,n2:7001,n3")
    assert location.topology == "cluster"
    assert location.nodes == (("n1", 7000), ("n2", 7001), ("n3", 6379))
    assert location.password == "pw"
    assert location.username is None
    assert parse_redis_url("redis+cluster://n1/0").nodes == (("n1", 6379),)


def test_the_password_is_not_in_the_repr_of_a_location() -> None:
    assert SECRET not in repr(parse_redis_url(f"redis+cluster://:{SECRET}@n1:7000"))


@pytest.mark.parametrize(
    ("url", "explains"),
    [
        ("memcached://h:11211", "must be a Redis URL such as"),
        ("redis+sentinel://s1:26379,s2:26379", "names the monitored primary"),
        ("redis+sentinel://s1/mymaster/zero", "must be a number"),
        ("redis+sentinel://s1/mymaster/0/extra", "names the monitored primary"),
        ("redis+cluster://n1:7000/1", "only database 0"),
        ("redis+cluster://n1:7000,,n2", "needs a name"),
        ("redis+cluster://n1:70000", "1 to 65535"),
        ("redis+cluster://n1?ssl=true", "no query string"),
        ("redis://n1:6379,n2:6379", "several hosts need a topology"),
        ("rediss+sentinel://s1/mymaster", "TLS to sentinels or cluster nodes is not supported"),
        # A password with an unencoded "/" splits the URL inside the password: still no echo.
        (f"redis+sentinel://app:{SECRET}/x@s1:26379/mymaster", "percent-encode"),
        (f"redis://app:{SECRET}/x@h:6379/0", "percent-encode"),
    ],
)
def test_a_bad_url_is_explained_without_repeating_any_of_it(url: str, explains: str) -> None:
    with pytest.raises(ValueError, match=explains) as failure:
        parse_redis_url(url)
    assert SECRET not in str(failure.value)
    assert "s1" not in str(failure.value)
    assert "n1" not in str(failure.value)


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"redis_url": "redis+sentinel://s1:26379"}, "REDIS_URL"),
        ({"redis_url": "redis://h:6379/0", "redis_sentinel_password": SECRET}, "REDIS_SENTINEL_PASSWORD"),
        ({"redis_url": "redis+cluster://n1:7000", "redis_key_prefix": "{app}:"}, "REDIS_KEY_PREFIX"),
    ],
)
def test_a_bad_redis_setting_stops_start_up_with_a_message_naming_it(
    settings: dict[str, str], named: str
) -> None:
    with pytest.raises(SettingsError) as failure:
        load_settings(_env_file=None, **settings)
    message = str(failure.value.code)
    assert named in message
    assert SECRET not in message


def test_every_topology_with_its_passwords_and_a_prefix_is_accepted() -> None:
    sentinel = load_settings(
        _env_file=None,
        redis_url="redis+sentinel://:pw@s1:26379,s2:26379/mymaster/0",
        redis_sentinel_password="spw",
        redis_key_prefix="mcpref:",
    )
    assert sentinel.redis_sentinel_password == "spw"
    cluster = load_settings(_env_file=None, redis_url="redis+cluster://n1:7000", redis_key_prefix="mcpref:")
    assert cluster.redis_key_prefix == "mcpref:"


def test_the_server_refuses_a_mistyped_sentinel_url_in_one_line_without_the_password() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mcp_server"],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], "REDIS_URL": f"redis+sentinel://:{SECRET}@s1:26379"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "REDIS_URL" in result.stderr
    assert "Traceback" not in result.stderr
    assert SECRET not in result.stderr + result.stdout


@pytest.mark.parametrize("tag", ["", "a{b", "a}b"])
def test_a_hash_tag_is_never_empty_and_never_holds_a_brace(tag: str) -> None:
    with pytest.raises(ValueError, match="hash tag"):
        same_slot(tag)
