"""The internal ticker: ticks on its interval and shuts down without cutting a tick short."""

from __future__ import annotations

import asyncio

from billing.consultations import TickReport
from billing.ticker import Ticker


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
