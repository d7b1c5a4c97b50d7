"""The in-server billing ticker: runs `ConsultationService.tick` every few seconds.

Used when no cron runs `kundlinow billing tick` (BILLING_INTERNAL_TICKER=true, the default).
Ticks are idempotent and safe concurrently, so several server processes may each run one.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

import structlog

from billing.consultations import TickReport
from billing.metrics import TickMetrics

log = structlog.get_logger(__name__)


class TickSource(Protocol):
    async def tick(self) -> TickReport: ...


CLOSE_GRACE_S = 10.0
"""How long ``close()`` lets a tick in flight commit before cancelling it."""


class Ticker:
    """Owns one task; ``close()`` lets a tick in flight finish, then stops it.

    Cancelling a tick mid-query would roll its transaction back (harmless: ticks are idempotent)
    but leaves asyncpg's connection in a broken state while the pool is closing, so shutdown waits
    for the current tick instead.
    """

    def __init__(
        self, service: TickSource, interval_seconds: float, metrics: TickMetrics | None = None
    ) -> None:
        self._service = service
        self._interval = interval_seconds
        self._metrics = metrics
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="billing-ticker")

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                report = await self._service.tick()
                if self._metrics is not None:
                    self._metrics.observe(report)
                if report.charged_minutes or report.timed_out or report.ended_insufficient:
                    log.info("billing_ticked", **report.to_json())
            except Exception:  # a failed tick is retried on the next interval
                log.exception("billing_tick_failed")
                if self._metrics is not None:
                    self._metrics.failed()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), CLOSE_GRACE_S)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
