"""A minimum playout delay for a subscriber whose link loses packets over a long round trip.

The playout-delay RTP header extension (``http://www.webrtc.org/experiments/rtp-hdrext/
playout-delay``, libwebrtc's ``docs/native-code/rtp-hdrext/playout-delay``) carries, in a
one-byte element of three bytes, a 12-bit minimum and a 12-bit maximum render delay in 10 ms
units; the receiver keeps its target delay within them, and keeps the last values it saw.

Why the SFU sends it: each lost video packet is repaired by one retransmission round trip
(the subscriber's NACK up, the RTX packet down). Chromium's jitter buffer aims at the jitter
it measures and adds the round trip only after several NACKed frames, so on a 150 ms round
trip with 3 % random loss a repaired frame often arrives after its render time: a freeze of
~0.2 s each, 6–8 per 45 s (docs/BENCHMARKS.md, bench/netq.py ``loss3``). A minimum of one
round trip plus a margin lets the repair arrive in time, at the cost of that much latency —
so it is asked for only while the subscriber's reports show both loss and a long round trip,
and given back (minimum 0) when the loss stops.
"""

from __future__ import annotations

PLAYOUT_DELAY_URI = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay"
MAX_UNITS = 0xFFF
"""The maximum sent: 40.95 s, no limit in practice (a maximum at or under 500 ms with a
minimum of 0 would switch libwebrtc to its low-latency renderer)."""
LOSS_ON = 0.01
"""Smoothed fraction lost from which the minimum is asked for."""
LOSS_OFF = 0.003
"""...and under which it is given back (hysteresis: random loss comes and goes per report)."""
MIN_RTT_S = 0.08
"""Below this round trip a repair fits in what the receiver buffers anyway."""
MARGIN_S = 0.1
"""Beyond one round trip: the receiver's wait before it NACKs and the RTX packet's own
queueing."""
CEILING_S = 0.5
"""The most latency asked for, whatever the round trip."""
SMOOTHING = 0.3
"""Weight of each receiver report's fraction lost (about one report a second)."""


def element_value(min_ms: int) -> int:
    """The extension's 24 bits: ``min_ms`` (rounded up to 10 ms) and the open maximum."""
    units = min(MAX_UNITS, -(-min_ms // 10))
    return (units << 12) | MAX_UNITS


class PlayoutFloor:
    """One subscriber's minimum playout delay, from the receiver reports about its video."""

    __slots__ = ("_loss", "min_ms")

    def __init__(self) -> None:
        self._loss = 0.0
        self.min_ms = 0
        """The minimum asked for now (0: none)."""

    def on_report(self, fraction_lost: float, rtt_s: float | None) -> int:
        """One report's fraction lost (0..1) and the current round trip: the new minimum."""
        self._loss += SMOOTHING * (fraction_lost - self._loss)
        if rtt_s is None or rtt_s < MIN_RTT_S or self._loss < LOSS_OFF:
            self.min_ms = 0
        elif self.min_ms or self._loss >= LOSS_ON:
            self.min_ms = int(min(rtt_s + MARGIN_S, CEILING_S) * 1000)
        return self.min_ms
