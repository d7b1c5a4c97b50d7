"""Issue 16's acceptance, short: a video consult through the web app between two Chromium
parties in network namespaces of their own (``tests/media/netq.py``), caller → astrologer.

Thresholds are the issue's, scaled to the shorter run: frozen time is ≤ 2 s per 45 s, so
≤ 2 s × run / 45 s here. The full 45 s table is ``bench/netq.py``. These need the engine's
congestion control (issue 16) to pass on a shaped link; on clean links they hold today.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Playwright, async_playwright

from core.db import Database
from kundlinow.config import Settings
from tests.browser import CHROMIUM
from tests.conftest import require_program
from tests.media.netns import LinkShape
from tests.media.netq import Case, Result, run_case

RUN_S = 20.0
WARMUP_S = 5.0


@pytest.fixture
async def playwright() -> AsyncIterator[Playwright]:
    require_program("/usr/sbin/ip", "iproute2 (ip netns)", "apt-get install iproute2")
    require_program("/usr/sbin/tc", "tc", "apt-get install iproute2")
    require_program(
        CHROMIUM, "Chromium", "apt-get install chromium, or set CHROMIUM_PATH to a Chromium"
    )
    async with async_playwright() as driver:
        yield driver


def frozen_allowance(seconds: float) -> float:
    return 2.0 * seconds / 45.0


def fps_floor(result: Result, wanted: float) -> float:
    """``wanted`` fps at the astrologer, unless the caller's encoder (starved of CPU on a busy
    machine) sent fewer: then 80 % of what it sent — the network path is what is tested."""
    return min(wanted, 0.8 * result.sent_fps)


async def test_clean_links_keep_full_frame_rate(
    playwright: Playwright, settings: Settings, database: Database
) -> None:
    result = await run_case(
        playwright, settings, database, Case("clean", seconds=RUN_S, warmup_s=WARMUP_S)
    )
    assert result.fps >= fps_floor(result, 25), result  # the 30 fps, on busy cores
    assert result.frozen_s <= frozen_allowance(RUN_S), result
    assert result.concealed_pct <= 2.0, result
    assert result.forwarded > 0 and result.retransmitted_pct <= 30, result


async def test_astrologer_downlink_400_kbits(
    playwright: Playwright, settings: Settings, database: Database
) -> None:
    result = await run_case(
        playwright,
        settings,
        database,
        Case(
            "astrologer's downlink 400 kbit/s",
            astrologer=LinkShape(down_kbps=400),
            seconds=RUN_S,
            warmup_s=WARMUP_S,
        ),
    )
    assert result.caller_kbps <= 350, result
    assert result.fps >= fps_floor(result, 15), result
    assert result.frozen_s <= frozen_allowance(RUN_S), result
    assert result.concealed_pct <= 2.0, result
    assert result.forwarded > 0 and result.retransmitted_pct <= 30, result
