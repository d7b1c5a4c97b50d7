"""The hub on ``/metrics``: sockets and their rooms (read at scrape time), the drain, and the
chat store's group commits."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from core.metrics import LATENCY_BUCKETS
from signalling.drain import DrainState
from signalling.routing import LocalRegistry


class HubCollector(Collector):
    """This node's sockets, the consultations they have joined, and whether it drains."""

    def __init__(self, sockets: LocalRegistry, drain: DrainState, node: str) -> None:
        self._sockets = sockets
        self._drain = drain
        self._node = node

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for name, documentation, value in (
            ("kundlinow_sockets", "Open authenticated WebSockets on this node",
             sum(len(conns) for conns in self._sockets.by_user.values())),
            ("kundlinow_socket_rooms", "Consultations with at least one socket on this node",
             len(self._sockets.by_room)),
            ("kundlinow_node_draining", "1 while this node drains (takes no new rooms)",
             int(self._drain.draining)),
        ):
            family = GaugeMetricFamily(name, documentation, labels=("node",))
            family.add_metric((self._node,), value)
            yield family


class ChatMetrics:
    """Group commits of chat messages (``ChatStore``): how many per batch, how long to commit."""

    def __init__(self, registry: CollectorRegistry, node: str) -> None:
        self._size = Histogram(
            "kundlinow_chat_batch_messages",
            "Chat messages stored by one group-commit statement",
            ("node",),
            registry=registry,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
        ).labels(node)
        self._latency = Histogram(
            "kundlinow_chat_commit_duration_seconds",
            "Time from a batch's start to its commit (what a sender waits for its ack)",
            ("node",),
            registry=registry,
            buckets=LATENCY_BUCKETS,
        ).labels(node)

    def observe(self, messages: int, seconds: float) -> None:
        self._size.observe(messages)
        self._latency.observe(seconds)
