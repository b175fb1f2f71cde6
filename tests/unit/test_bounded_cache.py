"""BoundedCache: never more than its ceiling, dropping the least recently used or the first stored."""

from __future__ import annotations

import pytest

from shared.bounded_cache import BoundedCache


def test_storing_past_the_ceiling_drops_the_least_recently_used() -> None:
    cache: BoundedCache[str, int] = BoundedCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recently used
    cache.put("c", 3)
    assert len(cache) == 2
    assert "b" not in cache
    assert (cache.get("a"), cache.get("c")) == (1, 3)


def test_without_lru_the_first_stored_goes_first_however_often_it_is_read() -> None:
    cache: BoundedCache[str, int] = BoundedCache(2, lru=False)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1
    cache.put("a", 10)  # replacing keeps its place
    cache.put("c", 3)
    assert list(cache) == ["b", "c"]


def test_pop_and_items_see_what_is_there() -> None:
    cache: BoundedCache[str, int] = BoundedCache(3)
    for number, key in enumerate("xyz"):
        cache.put(key, number)
    assert cache.pop("y") == 1
    assert cache.pop("y") is None
    assert cache.items() == [("x", 0), ("z", 2)]
    cache.clear()
    assert len(cache) == 0


def test_a_cache_holds_at_least_one_entry() -> None:
    with pytest.raises(ValueError, match="at least one"):
        BoundedCache(0)
