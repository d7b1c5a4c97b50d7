"""The in-server billing ticker: runs `ConsultationService.tick` every few seconds.

Used when no cron runs `kundlinow billing tick` (BILLING_INTERNAL_TICKER=true, the default).
Ticks are idempotent and safe concurrently, so several server processes may each run one.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from billing.consultations import ConsultationService

log = structlog.get_logger(__name__)


class Ticker:
    """Owns one task; `close()` cancels and awaits it."""

    def __init__(self, service: ConsultationService, interval_seconds: float) -> None:
        self._service = service
        self._interval = interval_seconds
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="billing-ticker")

    async def _run(self) -> None:
        while True:
            try:
                report = await self._service.tick()
                if report.charged_minutes or report.timed_out or report.ended_insufficient:
                    log.info("billing_ticked", **report.to_json())
            except asyncio.CancelledError:
                raise
            except Exception:  # a failed tick is retried on the next interval
                log.exception("billing_tick_failed")
            await asyncio.sleep(self._interval)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
