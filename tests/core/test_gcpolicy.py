"""The garbage collector's pauses on /metrics, and the frozen start-up heap."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from core.gcpolicy import GcPauses, freeze_startup_heap


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """Whatever a test freezes goes back to the collected generations afterwards."""
    yield
    gc.unfreeze()


def test_each_collection_is_timed_by_generation_until_removed() -> None:
    registry = CollectorRegistry()
    pauses = GcPauses(registry, "n1")
    pauses.install()
    try:
        gc.collect(0)
        gc.collect()
    finally:
        pauses.remove()
    labels = {"node": "n1"}
    young = registry.get_sample_value("kundlinow_gc_pause_seconds_count",
                                      {**labels, "generation": "0"})
    full = registry.get_sample_value("kundlinow_gc_pause_seconds_count",
                                     {**labels, "generation": "2"})
    total = registry.get_sample_value("kundlinow_gc_pause_seconds_sum",
                                      {**labels, "generation": "2"})
    assert young is not None and young >= 1
    assert full is not None and full >= 1 and total is not None and total > 0
    gc.collect()  # removed: no longer counted
    assert registry.get_sample_value("kundlinow_gc_pause_seconds_count",
                                     {**labels, "generation": "2"}) == full


def test_freezing_exempts_the_heap_from_collections(unfrozen: None) -> None:
    """After the freeze, collections walk only what was allocated since (the property the
    server relies on); the gauge reports the frozen objects."""
    registry = CollectorRegistry()
    GcPauses(registry, "n1")
    heap = [[i] for i in range(200_000)]  # a big, long-lived heap of container objects
    frozen = freeze_startup_heap()
    assert frozen >= len(heap)
    assert registry.get_sample_value("kundlinow_gc_frozen_objects", {"node": "n1"}) == frozen
    tracked = len(gc.get_objects())  # the frozen ones are not among the collected generations
    assert tracked < len(heap)
    del heap
