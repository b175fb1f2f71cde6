"""What keeps every Redis command valid on a Redis Cluster, checked on the source.

On a cluster one command, transaction or script may only touch keys of one hash slot. The project
keeps that true by construction: only `shared/storage/redis.py` talks to Redis (every caller goes
through the Store, whose operations touch one key each, except `delete`, which the client splits by
slot), and every Lua script there touches `KEYS[1]` alone. The contract suite proves the behaviour
on a real cluster; these catch the change that would break the rule before it reaches one.
"""

from __future__ import annotations

import re
from pathlib import Path

import shared.storage.redis as redis_store

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("mcp_server", "auth_server", "shared")
# The Store on Redis, and the REDIS_URL parser (which borrows redis-py's URL parsing only).
MAY_IMPORT_REDIS = {"shared/storage/redis.py", "shared/storage/redis_url.py"}
_IMPORTS_REDIS = re.compile(r"^\s*(?:from|import)\s+redis\b", re.MULTILINE)


def test_only_the_redis_store_talks_to_redis() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if str(path.relative_to(ROOT)) not in MAY_IMPORT_REDIS and _IMPORTS_REDIS.search(path.read_text())
    ]
    assert not offenders, f"talk to Redis through the Store (shared/storage/base.py): {offenders}"


def test_the_store_sends_no_transaction_or_pipeline() -> None:
    source = Path(redis_store.__file__).read_text()
    for construct in (".pipeline(", ".transaction(", "MULTI", ".watch("):
        assert construct not in source, f"{construct} would span keys: give them one same_slot tag"


def test_every_lua_script_touches_one_key() -> None:
    scripts = {
        name: value
        for name, value in vars(redis_store).items()
        if isinstance(value, str) and "redis.call" in value
    }
    touching = 0
    for name, script in scripts.items():
        keys = set(re.findall(r"KEYS\[(\w+)\]", script))  # none: a fragment (the server's clock)
        assert keys <= {"1"}, f"{name} touches KEYS{sorted(keys)}: on a cluster a script has one slot"
        touching += keys == {"1"}
    assert touching >= 2, "the scripts were not found: the test proves nothing"
