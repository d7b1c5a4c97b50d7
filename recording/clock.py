"""Media timestamps on the consultation clock (milliseconds since the recording's origin).

RTP timestamps of one track are mapped to the server's wall clock through the sender's RTCP
sender reports (RFC 3550 §6.4.1: each SR pairs an NTP wall-clock time with the RTP
timestamp of that instant). The sender's NTP clock need not agree with ours: per publisher,
the offset ``arrival - NTP`` of its reports is min-filtered over a window (the report with the
least network and pacing delay wins) and shared by all of its tracks, so a common error
cannot move its audio against its video (lip sync). Until a track's first report, its RTP
timestamps are anchored at the arrival of its first packet.
"""

from __future__ import annotations

from collections import deque

NTP_UNIX_OFFSET = 2_208_988_800
"""Seconds from the NTP epoch (1900) to the Unix epoch (RFC 5905 §6)."""


def ntp_to_unix(ntp: int) -> float:
    """A 64-bit NTP timestamp (32.32 fixed point) as Unix seconds."""
    return (ntp >> 32) - NTP_UNIX_OFFSET + (ntp & 0xFFFFFFFF) / 4294967296.0


class SenderClock:
    """One publisher's clock offset (our wall clock minus its NTP clock), shared by its tracks."""

    def __init__(self, window: int = 32) -> None:
        self._samples: deque[float] = deque(maxlen=window)
        self.offset_s: float | None = None

    def on_report(self, sender_unix: float, arrival_unix: float) -> None:
        self._samples.append(arrival_unix - sender_unix)
        self.offset_s = min(self._samples)


class TrackClock:
    """RTP timestamps of one track → Unix seconds on the server's clock."""

    def __init__(self, clock_rate: int, sender: SenderClock) -> None:
        self.rate = clock_rate
        self.sender = sender
        self._last_rtp: int | None = None
        self._ext = 0
        """The extended (unwrapped) timestamp of ``_last_rtp``."""
        self._anchor: tuple[int, float] | None = None
        """(extended RTP, wall clock) of the first packet: the mapping before any SR."""
        self._report: tuple[int, float] | None = None
        """(extended RTP, sender NTP as Unix seconds) of the latest SR."""
        self.synchronised = False
        """Whether timestamps map through a sender report (not the arrival anchor): an
        attribute, read per frame, set by the first report that finds the sender's offset
        known (``TrackRecorder`` updates the offset first)."""

    def _extend(self, rtp: int) -> int:
        """Unwrap a 32-bit timestamp near the last one (RFC 3550 §5.1: it wraps)."""
        if self._last_rtp is None:
            self._last_rtp = rtp
            self._ext = rtp
            return rtp
        delta = (rtp - self._last_rtp) & 0xFFFFFFFF
        if delta >= 0x80000000:
            delta -= 0x100000000
        return self._ext + delta

    def on_packet(self, rtp: int, arrival_unix: float) -> float:
        """Wall-clock time (Unix seconds) of the media sampled at ``rtp``."""
        ext = self._extend(rtp)
        if ext > self._ext or self._anchor is None:
            self._ext, self._last_rtp = ext, rtp
        if self._anchor is None:
            self._anchor = (ext, arrival_unix)
        offset = self.sender.offset_s
        if self._report is not None and offset is not None:
            rtp0, ntp0 = self._report
            return ntp0 + offset + (ext - rtp0) / self.rate
        rtp0, t0 = self._anchor
        return t0 + (ext - rtp0) / self.rate

    def on_report(self, rtp: int, sender_unix: float) -> None:
        # before any packet, the report's own timestamp starts the unwrapping
        self._report = (self._extend(rtp), sender_unix)
        self.synchronised = self.sender.offset_s is not None
