"""Full collections freeze their survivors; reference counting still frees them; a thorough collection at the
interval finds the cycles frozen objects formed since, and says what it found."""

from __future__ import annotations

import gc
import logging
import weakref
from collections.abc import Iterator

import pytest
from superpod.cluster import heap


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Mirrored:
    """Stands for a mirrored object (a dict of a Node, say): anything the collector tracks."""

    def __init__(self) -> None:
        self.other: Mirrored | None = None


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def policy(clock: Clock) -> Iterator[heap.FrozenSurvivors]:
    gc.collect()
    survivors = heap.FrozenSurvivors(thorough_seconds=60.0, clock=clock)
    survivors.install()
    try:
        yield survivors
    finally:
        survivors.uninstall()
        gc.collect()


def cycle() -> weakref.ref[Mirrored]:
    """Two objects that hold each other and nothing else holds: garbage only the cyclic collector frees."""
    a, b = Mirrored(), Mirrored()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_the_survivors_of_a_full_collection_are_frozen_and_freed_when_dropped(policy):
    kept = [Mirrored() for _ in range(1000)]
    gc.collect()
    assert gc.get_freeze_count() >= len(kept)
    assert not any(obj is kept[0] for obj in gc.get_objects(generation=2))  # no collection scans them
    probe = weakref.ref(kept[0])
    del kept
    assert probe() is None  # reference counting frees a frozen object at once


def test_what_is_new_since_the_last_full_collection_is_still_collected(policy):
    gc.collect()
    probe = cycle()
    gc.collect()
    assert probe() is None


def test_a_cycle_among_frozen_objects_is_freed_by_the_thorough_collection(policy, clock, caplog):
    caplog.set_level(logging.INFO, logger=heap.__name__)
    a, b = Mirrored(), Mirrored()
    a.other, b.other = b, a
    probe = weakref.ref(a)
    gc.collect()  # both held: frozen
    del a, b
    gc.collect()
    assert probe() is not None  # frozen: not scanned, so not freed yet

    clock.now += 30.0
    gc.collect()
    assert probe() is not None  # the interval has not passed

    clock.now += 30.0
    gc.collect()  # the first full collection after the interval gives everything back to the collector
    gc.collect()  # and the next one scans it all
    assert probe() is None
    assert policy.thorough_collections == 1
    assert policy.thorough_at == clock.now
    assert "thorough garbage collection" in caplog.text
    assert gc.get_freeze_count() > 0  # frozen again after it

    clock.now += 30.0
    probe = cycle()
    gc.collect()
    assert probe() is None  # new garbage goes at the next full collection, as before
    assert policy.thorough_collections == 1


def test_uninstalled_nothing_stays_frozen(clock):
    survivors = heap.FrozenSurvivors(clock=clock)
    survivors.install()
    survivors.install()  # a second install changes nothing: one uninstall undoes it
    a = Mirrored()
    a.other = a
    probe = weakref.ref(a)
    gc.collect()
    del a
    survivors.uninstall()
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert probe() is None
    assert gc.get_freeze_count() == 0  # no longer freezing
