"""The delay-based estimate of one subscriber's downlink: GCC's send-side delay-based
controller (draft-ietf-rmcat-gcc-02 §5, in the send-side form libwebrtc's ``DelayBasedBwe``
runs on transport-wide feedback).

The SFU numbers every packet it sends the subscriber (``media.transport_seq``); the
subscriber's browser reports when each arrived (RTPFB FMT 15, ``media.twcc``). Per report:

1. the reported packets are matched with their send time and size, and the received ones
   taken in arrival order;
2. each feeds the acknowledged throughput (``media.aimd.AckedThroughput``) and the packet
   grouping (``media.interarrival``: 5 ms send bursts, delay variation between groups);
3. each group delta updates the trendline and the over-use detector (``media.trendline``:
   slope over 20 groups, adaptive threshold from 12.5 ms, k_up 0.0087, k_down 0.039);
4. the detector's verdict after the report drives the AIMD rate controller
   (``media.aimd``: over-use → 0.85 × throughput; normal → +8 %/s, or additive near the
   link capacity; under-use → hold).

A queue in front of a bottleneck grows as soon as the SFU sends faster than the link drains,
so the slope turns positive hundreds of milliseconds before the queue overflows — the loss-
based estimate (``media.congestion.DownlinkEstimate``) learns of it only from the drops.
``media.congestion.Downlink`` takes the minimum of the two, as gcc-02 §6 and libwebrtc's
``SendSideBandwidthEstimation`` (the delay-based estimate caps the loss-based one) do.

A subscriber silent for ``STREAM_TIMEOUT_S`` (no report) restarts the grouping and trendline,
as libwebrtc does: deltas across the gap would mean nothing.
"""

from __future__ import annotations

from media.aimd import BETA, AckedThroughput, AimdRateControl
from media.interarrival import InterArrival
from media.transport_seq import SentPacket
from media.trendline import TrendlineEstimator, Usage
from media.twcc import REFERENCE_US

STREAM_TIMEOUT_S = 2.0
OVERFLOW_LOSS = 0.2
"""A loss fraction this high is a queue overflowing, not a radio's random loss."""
_ARRIVAL_PERIOD_US = (1 << 24) * REFERENCE_US
"""The feedback's 24-bit reference time wraps after this (§3.1)."""


class DelayBasedEstimate:
    """GCC's delay-based controller over one transport's feedback reports."""

    def __init__(self, start_bps: int, min_bps: int, max_bps: int) -> None:
        self.throughput = AckedThroughput()
        self.rate = AimdRateControl(start_bps, min_bps, max_bps)
        self.reports = 0
        """Feedback reports that acknowledged at least one packet."""
        self.last_overuse: float | None = None
        """When the detector last said over-use (``time.monotonic()``)."""
        self._grouping = InterArrival()
        self._trendline = TrendlineEstimator()
        self._last_report: float | None = None
        self._arrival_offset = 0
        self._last_arrival: int | None = None

    @property
    def bps(self) -> int:
        return int(self.rate.bps)

    @property
    def usage(self) -> Usage:
        return self._trendline.usage

    @property
    def threshold_ms(self) -> float:
        return self._trendline.threshold_ms

    def raise_to(self, bps: float, now: float) -> None:
        """A probe at ``bps`` went through: the link carries at least that much."""
        if bps > self.rate.bps:
            self.rate.set_estimate(bps, now)

    def on_loss_event(self, bps: float, fraction_lost: float, now: float) -> None:
        """The loss-based controller cut its estimate to ``bps`` after ``fraction_lost``:
        a queue overflowed, or the link lost packets. The AIMD follows it down and controls
        from there, so that the increases after it are this controller's (bounded by the
        acknowledged throughput, additive near the capacity). A heavy loss
        (≥ ``OVERFLOW_LOSS``: a sender far above the link, a cap that just dropped) is an
        over-use: 0.85 × the acknowledged throughput, as for one the trendline detects — a
        queue that filled before the trendline had its 20 groups shows no delay trend, only
        drops. A light one is not: what the SFU sends is deliberately ~0.8 × the estimate,
        so 0.85 × it after every random-loss cut ratcheted a 3 %-loss link down to a tenth
        (bench/netq.py). Not in libwebrtc's delay-based controller, which meets a standing
        queue only through its loss-based one."""
        self.last_overuse = now
        throughput = self.throughput.bps
        if fraction_lost >= OVERFLOW_LOSS and throughput is not None:
            bps = min(bps, BETA * throughput)
        self.rate.lower_to(bps, now)

    def on_report(self, packets: list[SentPacket], now: float, rtt_s: float | None) -> bool:
        """One feedback report's packets (``TransportSequencer.match``), received at ``now``
        (``time.monotonic()``). True if the estimate changed."""
        received = [p for p in packets if p.arrival_us is not None]
        if not received:
            return False
        if self._last_report is not None and now - self._last_report > STREAM_TIMEOUT_S:
            self._grouping.reset()
            self._trendline = TrendlineEstimator()
        self._last_report = now
        self.reports += 1
        before = self.rate.bps
        local_us = int(now * 1_000_000)
        for packet, arrival_us in sorted(
            ((p, self._unwrap(p.arrival_us)) for p in received if p.arrival_us is not None),
            key=lambda pa: pa[1],
        ):
            self.throughput.add(arrival_us / 1000, packet.size)
            delta = self._grouping.add(packet.send_us, arrival_us, local_us)
            if delta is not None:
                self._trendline.update(delta.arrival_delta_ms, delta.send_delta_ms,
                                       delta.arrival_ms)
        usage = self._trendline.usage
        if usage is Usage.OVERUSING:
            self.last_overuse = now
        if rtt_s is not None:
            self.rate.rtt_s = rtt_s
        self.rate.update(usage, self.throughput.bps, now)
        return self.rate.bps != before

    def _unwrap(self, arrival_us: int) -> int:
        """Arrival times on one continuous axis across the 24-bit reference-time wrap."""
        last = self._last_arrival
        if last is not None:
            jump = arrival_us + self._arrival_offset - last
            if jump < -_ARRIVAL_PERIOD_US // 2:
                self._arrival_offset += _ARRIVAL_PERIOD_US
            elif jump > _ARRIVAL_PERIOD_US // 2:
                self._arrival_offset -= _ARRIVAL_PERIOD_US
        unwrapped = arrival_us + self._arrival_offset
        self._last_arrival = unwrapped
        return unwrapped
