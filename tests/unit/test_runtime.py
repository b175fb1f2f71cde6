"""`shared.runtime.freeze_startup_heap`: start-up objects leave the collector's view; later
garbage, cycles included, is still collected (the server does not start leaking)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from shared.runtime import freeze_startup_heap


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()


def test_start_up_objects_are_frozen_and_later_cycles_still_collected(unfrozen: None) -> None:
    before = Node()
    before.other = before
    freeze_startup_heap()
    assert gc.get_freeze_count() > 0
    assert gc.is_tracked(before)  # still alive and tracked, just never scanned again

    a, b = Node(), Node()
    a.other, b.other = b, a  # a reference cycle made after start-up: only the collector frees it
    gone = weakref.ref(a)
    del a, b
    gc.collect()
    assert gone() is None
