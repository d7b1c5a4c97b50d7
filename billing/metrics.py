"""Billing on ``/metrics``: the per-minute tick and Razorpay webhooks.

A server exports the tick metrics of its own ticker (``BILLING_INTERNAL_TICKER``); a cron
``kundlinow billing tick`` cannot be scraped, so it prints its report as a JSON line (the job's
log) and, with ``--metrics-file``, writes the same series in the text format for node_exporter's
textfile collector (docs/OPERATIONS.md).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from billing.lifecycle import TickReport


class TickMetrics:
    """What each tick of this process charged, ended, how long it took, and whether it failed."""

    def __init__(self, registry: CollectorRegistry, node: str) -> None:
        self._node = node
        self._duration = Histogram(
            "kundlinow_billing_tick_duration_seconds",
            "Duration of one successful billing tick",
            ("node",),
            registry=registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        ).labels(node)
        self._failures = Counter(
            "kundlinow_billing_tick_failures", "Billing ticks that raised (retried next interval)",
            ("node",), registry=registry,
        ).labels(node)
        self._minutes = Counter(
            "kundlinow_billing_charged_minutes", "Consultation minutes charged by ticks",
            ("node",), registry=registry,
        ).labels(node)
        self._paise = Counter(
            "kundlinow_billing_charged_paise", "Money charged by ticks, in paise",
            ("node",), registry=registry,
        ).labels(node)
        self._ended = Counter(
            "kundlinow_billing_tick_ended",
            "Consultations a tick ended: insufficient_balance, or requests timed_out",
            ("node", "reason"), registry=registry,
        )
        self._last_success = Gauge(
            "kundlinow_billing_last_tick_timestamp_seconds",
            "Unix time of this process's last successful tick (absent until one succeeded)",
            ("node",), registry=registry,
        )

    def observe(self, report: TickReport) -> None:
        self._duration.observe(report.seconds)
        self._minutes.inc(report.charged_minutes)
        self._paise.inc(report.charged_paise)
        self._ended.labels(self._node, "insufficient_balance").inc(len(report.ended_insufficient))
        self._ended.labels(self._node, "timed_out").inc(len(report.timed_out))
        self._last_success.labels(self._node).set_to_current_time()

    def failed(self) -> None:
        self._failures.inc()


class WebhookMetrics:
    """Razorpay webhooks by outcome: what the event did (``credited``, ``duplicate``,
    ``ignored`` …) or the error code it was refused with (``invalid_signature`` …)."""

    def __init__(self, registry: CollectorRegistry, node: str) -> None:
        self._node = node
        self._events = Counter(
            "kundlinow_webhook_events", "Razorpay webhook deliveries by outcome",
            ("node", "outcome"), registry=registry,
        )

    def observe(self, outcome: str) -> None:
        self._events.labels(self._node, outcome).inc()
