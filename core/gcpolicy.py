"""The cyclic garbage collector on a realtime server.

A full (generation 2) collection walks every container object of the process while the event
loop waits. With aiohttp, aiortc, asyncpg, redis, OpenTelemetry and PyAV imported, a server
holds ~115,000 of them before it serves anything, and one full collection took 100–670 ms on
the 2-core machine of ``docs/BENCHMARKS.md`` (the GC columns of ``bench/recording.py``): every
call the node carries stalls that long, every 15–20 s under media load. Those objects are the
start-up heap (modules, classes, functions, constants) and never become garbage.

``freeze_startup_heap`` moves them to the permanent generation (``gc.freeze``, Python 3.7+),
so that later collections walk only what serving allocates. ``GcPauses`` puts each
collection's pause on ``/metrics``, so an operator sees what the collector costs the loop.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram

PAUSE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)
"""Seconds a collection holds the interpreter (0.5 ms … 1 s)."""


def freeze_startup_heap() -> int:
    """Collect once (so no garbage is kept forever), then exempt every object that exists
    now from later collections. Call it once the server has started, before it serves.
    Returns how many objects are frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class GcPauses:
    """Each collection's pause by generation (``gc.callbacks``), and the frozen heap's size.

    The callbacks are process-wide: ``install`` and ``remove`` pair them with the
    application's lifetime."""

    def __init__(self, registry: CollectorRegistry, node: str) -> None:
        self._pause = Histogram(
            "kundlinow_gc_pause_seconds",
            "Time the cyclic garbage collector held the interpreter, per collection",
            ("node", "generation"),
            registry=registry,
            buckets=PAUSE_BUCKETS,
        )
        self._by_generation = [self._pause.labels(node, str(g)) for g in range(3)]
        frozen = Gauge(
            "kundlinow_gc_frozen_objects",
            "Objects exempt from collection (the start-up heap, frozen once serving starts)",
            ("node",),
            registry=registry,
        )
        frozen.labels(node).set_function(gc.get_freeze_count)
        self._started = 0.0

    def install(self) -> None:
        gc.callbacks.append(self._on_gc)

    def remove(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self._by_generation[info["generation"]].observe(time.perf_counter() - self._started)
