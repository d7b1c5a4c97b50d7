"""Prometheus collectors of one application (its own registry: no process globals).

Every series a node exports carries a ``node`` label (``NODE_ID``): several nodes scraped into one
Prometheus stay apart even behind one Service address. Each package defines the metrics of its
own concern (``billing.metrics``, ``media.metrics``, ``recording.metrics``,
``signalling.metrics``) on the registry the app hands it; this module holds the HTTP metrics and
the event-loop lag, which belong to no package below ``api``.
"""

from __future__ import annotations

import asyncio
import contextlib

from prometheus_client import CollectorRegistry, Counter, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
"""Seconds, for request and commit latencies (1 ms … 10 s)."""


class HttpMetrics:
    """Request counts and latencies by method, route template and status."""

    def __init__(self, node: str, registry: CollectorRegistry | None = None) -> None:
        self.node = node
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "kundlinow_http_requests",
            "HTTP requests handled",
            ("method", "route", "status", "node"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "kundlinow_http_request_duration_seconds",
            "Time to produce the response (for a WebSocket route: the session)",
            ("method", "route", "status", "node"),
            registry=self.registry,
            buckets=LATENCY_BUCKETS,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status), self.node).inc()
        self.latency.labels(method, route, str(status), self.node).observe(seconds)


class EventLoopLag:
    """How late the event loop runs a callback that is due: one task sleeps ``interval_s`` and
    measures by how much it overslept. Lag delays every socket frame, RTCP report and tick the
    node handles, so it is the first sign of a node running out of CPU."""

    def __init__(
        self, registry: CollectorRegistry, node: str, interval_s: float = 0.25
    ) -> None:
        self._interval_s = interval_s
        self._lag = Histogram(
            "kundlinow_event_loop_lag_seconds",
            "Delay of a due event-loop callback beyond its scheduled time",
            ("node",),
            registry=registry,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        ).labels(node)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="event-loop-lag")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self._interval_s
            await asyncio.sleep(self._interval_s)
            self._lag.observe(max(0.0, loop.time() - due))

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
