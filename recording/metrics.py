"""Recording on ``/metrics``: files finalised (by status), bytes stored, and failures by stage."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from recording.writer import FileResult

WRITE, CATALOG, LOOKUP = "write", "catalog", "lookup"
"""Failure stages: a file could not be written, its catalogue row not stored, or the
consultation not looked up at a join (the call then goes unrecorded)."""


class RecordingMetrics:
    """Counts of this node's live recorder; a private registry when none is given (tests)."""

    def __init__(self, registry: CollectorRegistry | None = None, node: str = "") -> None:
        registry = registry if registry is not None else CollectorRegistry()
        self._node = node
        self._files = Counter(
            "kundlinow_recording_files",
            "Recording files finalised: complete, empty (no frame: dropped), failed",
            ("node", "status"), registry=registry,
        )
        self._bytes = Counter(
            "kundlinow_recording_bytes", "Bytes of finalised recording files",
            ("node",), registry=registry,
        ).labels(node)
        self._failures = Counter(
            "kundlinow_recording_failures", "Recording failures by stage (write, catalog, lookup)",
            ("node", "stage"), registry=registry,
        )
        for stage in (WRITE, CATALOG, LOOKUP):  # present at 0: alerts see a rise from nothing
            self._failures.labels(node, stage)

    def file_finished(self, result: FileResult) -> None:
        self._files.labels(self._node, result.status).inc()
        self._bytes.inc(result.bytes)
        if result.status == "failed":
            self.failed(WRITE)

    def failed(self, stage: str) -> None:
        self._failures.labels(self._node, stage).inc()
