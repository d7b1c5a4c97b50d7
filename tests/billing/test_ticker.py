"""The internal ticker: ticks on its interval and shuts down without cutting a tick short."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg
from prometheus_client import CollectorRegistry, generate_latest

from billing.config import BillingSettings
from billing.consultations import ConsultationService, TickReport
from billing.metrics import TickMetrics
from billing.ticker import Ticker
from core.bus import LocalBus
from core.clock import SystemClock
from tests.polling import eventually
from tests.scrape import Scrape


class GatedTicks:
    """A tick source whose ticks finish only when the test opens the gate."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.started = 0
        self.finished = 0
        self.in_tick = asyncio.Event()

    async def tick(self) -> TickReport:
        self.started += 1
        self.in_tick.set()
        await self.gate.wait()
        self.finished += 1
        return TickReport()


async def test_close_lets_the_tick_in_flight_finish() -> None:
    source = GatedTicks()
    ticker = Ticker(source, interval_seconds=0.01)
    ticker.start()
    await asyncio.wait_for(source.in_tick.wait(), 2)
    closing = asyncio.create_task(ticker.close())
    await asyncio.sleep(0.05)
    assert not closing.done()  # waiting for the tick, not cancelling it
    source.gate.set()
    await asyncio.wait_for(closing, 2)
    assert source.finished == source.started == 1


async def test_close_when_idle_does_not_wait_for_the_interval() -> None:
    source = GatedTicks()
    source.gate.set()
    ticker = Ticker(source, interval_seconds=3600)
    ticker.start()
    await asyncio.wait_for(source.in_tick.wait(), 2)
    await asyncio.wait_for(ticker.close(), 1)
    assert source.finished == 1


@dataclass(frozen=True)
class _Pool:
    pool: asyncpg.Pool


async def test_ticks_and_failed_ticks_are_counted(db_dsn: str) -> None:
    """A tick whose database is gone raises; the ticker counts it, logs it and ticks on."""
    pool = await asyncpg.create_pool(db_dsn, min_size=1, max_size=1)
    await pool.close()
    service = ConsultationService(_Pool(pool), LocalBus(), SystemClock(), BillingSettings())
    registry = CollectorRegistry()
    ticker = Ticker(service, interval_seconds=0.01, metrics=TickMetrics(registry, "node-a"))

    def scrape() -> Scrape:
        return Scrape.parse(generate_latest(registry).decode())

    ticker.start()
    try:
        failed = await eventually(
            lambda: scrape().value("kundlinow_billing_tick_failures_total", node="node-a") >= 2
        )
        assert failed, "failed ticks were not counted"
    finally:
        await ticker.close()
    after = scrape()
    assert after.value("kundlinow_billing_tick_duration_seconds_count", node="node-a") == 0
    assert not after.has("kundlinow_billing_last_tick_timestamp_seconds")  # never succeeded
