"""When the SFU sends its RTCP reports and how it packs them (RFC 3550 §6).

``Participant._run_rtcp`` builds each track's reports; this module times the loop and sends the
reports of one transport as compound packets.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from media.aiortc_glue import SrtpLink

RTCP_TICK_S = 0.1
"""Grid the RTCP report times of all participants are rounded up to."""

RTCP_COMPOUND_MAX = 1200
"""Bytes of reports per compound RTCP packet: with the SRTCP trailer (RFC 3711 §3.4) and
IP/UDP headers it stays within a 1280-byte IPv6 minimum MTU path."""


def rtcp_tick_delay(now: float, delay: float) -> float:
    """``delay`` rounded up so that it ends on the ``RTCP_TICK_S`` grid of the loop clock.

    Every participant's report loop then wakes at most ten times a second in total, in
    one event-loop iteration, instead of each at its own instant: a process wake-up costs
    more than the reports. The interval keeps its RFC 3550 §6.2 randomisation (at
    100 ms granularity); the reports go to different receivers, so there is no
    self-synchronisation among senders of one session to avoid.
    """
    return math.ceil((now + delay) / RTCP_TICK_S) * RTCP_TICK_S - now


async def send_compounds(reports: Iterable[tuple[SrtpLink, bytes]]) -> None:
    """Send each transport's reports as one compound packet (RFC 8108 §5.3; RFC 3550 §6.1 lets
    packet types repeat), split only to stay under ``RTCP_COMPOUND_MAX`` bytes: one SRTCP
    protect and send per transport and interval instead of one per track. Each report must
    start with an SR or RR."""
    compounds: dict[SrtpLink, bytes] = {}
    for link, report in reports:
        pending = compounds.get(link, b"")
        if pending and len(pending) + len(report) > RTCP_COMPOUND_MAX:
            await link.send_rtcp(pending)
            pending = b""
        compounds[link] = pending + report
    for link, compound in compounds.items():
        await link.send_rtcp(compound)
