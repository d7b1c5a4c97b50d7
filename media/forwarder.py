"""The forwarding engine: published tracks (``UpTrack``) fan encoded RTP out to
subscriber tracks (``DownTrack``) without depacketising, decoding or re-encoding.

Per received packet: one header unpack, keyframe detection on video, a history slot
(for NACKs), then for every subscriber a new 12-byte header (SSRC, payload type, sequence
number and timestamp rewritten with per-subscriber offsets, RFC 3550 §5.1 / RFC 7667 §3.7
"media-switching mixer" semantics), SRTP protect and one ``sendto``.

Keyframes and loss (RFC 4585):
* a subscriber starts (and restarts after congestion or a publisher switch) on a keyframe;
  the publisher gets a PLI (§6.3.1), at most one per ``pli_interval_s``;
* subscriber PLI/FIR (RFC 5104 §4.3.1) are forwarded as PLI, rate limited the same way;
* subscriber NACKs (§6.2.1) are answered from the publisher track's packet history, as RTX
  (RFC 4588) when negotiated, within the subscriber's budget (``media.congestion``): only
  while the packet can still arrive in time, at most twice, and within a share of its
  downlink estimate; a packet past the count or the deadline asks for a keyframe (PLI);
* a subscriber whose downlink estimate fell below the floor gets no video (``paused``);
* gaps from the publisher are NACKed upstream;
* a subscriber whose socket backs up is skipped to the next keyframe; nothing queues per
  subscriber, so one slow subscriber cannot delay the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    AnyRtcpPacket,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    pack_remb_fci,
)

from core.tasks import TaskSet
from media.downtrack import DownTrack
from media.observer import ForwardedPacket, PacketTap
from media.packets import RTP_HEADER, RTX_OSN, keyframe_detector, seq_gt
from media.stats import RateWindow

logger = logging.getLogger(__name__)

REMB_PROMPT_DECREASE = 0.97
"""A REMB this much lower than the last one sent goes out at once, not with the next report
(libwebrtc's receiver does the same for decreases)."""
SendRtcp = Callable[[bytes], Awaitable[None]]


class UpTrack:
    """A published track: receives the publisher's RTP and feeds its subscribers."""

    def __init__(
        self,
        track_id: str,
        kind: str,
        codec: RTCRtpCodecParameters,
        codecs: list[RTCRtpCodecParameters],
        *,
        publisher_id: str,
        rtcp_ssrc: int,
        send_rtcp: SendRtcp,
        pli_interval_s: float,
        history: int,
        remb_bitrate_bps: int,
    ) -> None:
        self.track_id = track_id
        self.kind = kind
        self.codec = codec
        self.publisher_id = publisher_id
        self.clock_rate = codec.clockRate
        self.is_video = kind == "video"
        self.is_keyframe = keyframe_detector(codec.name)
        self._codec_by_pt = {c.payloadType or 0: c for c in codecs}
        self._rtx_apt: dict[int, int] = {
            c.payloadType or 0: int(str(c.parameters["apt"]))
            for c in codecs
            if c.name.lower() == "rtx" and "apt" in c.parameters
        }
        self.media_ssrc: int | None = None
        self.rtcp_ssrc = rtcp_ssrc
        self._send_rtcp = send_rtcp
        self._pli_interval = pli_interval_s
        self.remb_bps = remb_bitrate_bps
        """The REMB sent to the publisher (``set_remb``; the configured maximum until a
        subscriber's estimate lowers it)."""
        self._remb_sent = remb_bitrate_bps
        self._pli_last = 0.0
        self._pli_handle: asyncio.TimerHandle | asyncio.Handle | None = None
        self._tasks = TaskSet("media_task_failed")
        self._mask = history - 1
        self._history: list[ForwardedPacket | None] = [None] * history
        self.downtracks: list[DownTrack] = []
        self.tap: PacketTap | None = None
        """The recorder's tap, if this track is recorded (one attribute test per packet
        when it is not)."""
        self.closed = False
        # receive statistics (RFC 3550 §6.4.1 / Appendix A.3, A.8)
        self.rate = RateWindow()
        self.frames = 0
        self.keyframes = 0
        self.plis_sent = 0
        self.nacks_sent = 0
        self.rtx_received = 0
        self._base_seq: int | None = None
        self._max_seq = 0
        self._cycles = 0
        self._expected_prior = 0
        self._received_prior = 0
        self._jitter_q4 = 0
        self._last_transit: int | None = None
        self._missing: set[int] = set()
        self._sr_lsr = 0
        self._sr_time = 0.0
        self.fraction_lost = 0

    # -- media path -------------------------------------------------------------------

    def on_rtp(self, data: bytes, start: int, end: int, arrival_ms: int) -> None:
        """Handle one decrypted RTP packet of this track (media or RTX)."""
        _, b1, seq, ts, ssrc = RTP_HEADER.unpack_from(data)
        pt = b1 & 0x7F
        apt = self._rtx_apt.get(pt)
        if apt is not None:  # RFC 4588 §4: unwrap the retransmission
            if end - start < 2 or self.media_ssrc is None:
                return
            seq = RTX_OSN.unpack_from(data, start)[0]
            start += 2
            b1 = (b1 & 0x80) | apt
            self.rtx_received += 1
            self._missing.discard(seq)
        elif self.media_ssrc != ssrc:
            if self.media_ssrc is not None:
                logger.info("publisher_ssrc_changed", extra={"track": self.track_id})
                self._base_seq = None
                for down in self.downtracks:
                    down.source_switched()
            self.media_ssrc = ssrc
        if start >= end:
            return  # padding-only probe
        payload = data[start:end]
        if apt is None and self._receive_stats(seq, ts, arrival_ms, end - start):
            self._tasks.spawn(self._nack_upstream())
        key = self.is_keyframe(payload) if self.is_video else True
        if b1 & 0x80:
            self.frames += 1
        if key and self.is_video:
            self.keyframes += 1
        now = time.monotonic()
        packet = self._history[seq & self._mask] = (seq, ts, b1, payload, now)
        tap = self.tap
        if tap is not None:
            tap.on_rtp(packet)
        for down in self.downtracks:
            down.forward(seq, ts, b1, payload, key, now)

    def _receive_stats(self, seq: int, ts: int, arrival_ms: int, size: int) -> bool:
        """Update RFC 3550 A.1/A.8 counters; True if a gap worth a NACK appeared."""
        rate = self.rate
        rate.bytes += size
        rate.packets += 1
        gap = False
        if self._base_seq is None:
            self._base_seq = self._max_seq = seq
            self._missing.clear()
        elif seq_gt(seq, self._max_seq):
            skipped = (seq - self._max_seq - 1) & 0xFFFF
            if seq < self._max_seq:
                self._cycles += 0x10000
            if self.is_video and 0 < skipped <= 64:
                s = self._max_seq
                for _ in range(skipped):
                    s = (s + 1) & 0xFFFF
                    self._missing.add(s)
                gap = True
                if len(self._missing) > 256:
                    self._missing.clear()
            self._max_seq = seq
        else:
            self._missing.discard(seq)
        # interarrival jitter, RFC 3550 §6.4.1 / A.8
        transit = arrival_ms * self.clock_rate // 1000 - ts
        last = self._last_transit
        self._last_transit = transit
        if last is not None:
            d = abs(transit - last)
            if d < self.clock_rate * 10:
                self._jitter_q4 += d - ((self._jitter_q4 + 8) >> 4)
        return gap

    async def _nack_upstream(self) -> None:
        if self.media_ssrc is None or not self._missing:
            return
        packet = RtcpRtpfbPacket(
            fmt=RTCP_RTPFB_NACK, ssrc=self.rtcp_ssrc, media_ssrc=self.media_ssrc
        )
        packet.lost = sorted(self._missing)[:64]
        self.nacks_sent += 1
        await self._send_rtcp(bytes(packet))

    def packet(self, seq: int) -> tuple[int, int, int, bytes, float] | None:
        """The history entry for source sequence number ``seq``, if still held."""
        entry = self._history[seq & self._mask]
        if entry is not None and entry[0] == seq:
            return entry
        return None

    # -- keyframes --------------------------------------------------------------------

    def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe (RFC 4585 §6.3.1 PLI), rate limited."""
        if not self.is_video or self.closed or self._pli_handle is not None:
            return
        now = time.monotonic()
        wait = self._pli_last + self._pli_interval - now
        loop = asyncio.get_running_loop()
        if wait > 0:
            self._pli_handle = loop.call_later(wait, self._pli_due)
        else:
            self._pli_handle = loop.call_soon(self._pli_due)

    def _pli_due(self) -> None:
        self._pli_handle = None
        if self.closed:
            return
        if self.media_ssrc is None:  # nothing received yet: ask again shortly
            self._pli_handle = asyncio.get_running_loop().call_later(
                self._pli_interval, self._pli_due
            )
            return
        self._pli_last = time.monotonic()
        self.plis_sent += 1
        packet = RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=self.rtcp_ssrc, media_ssrc=self.media_ssrc)
        self._tasks.spawn(self._send_rtcp(bytes(packet)))

    # -- RTCP -------------------------------------------------------------------------

    async def on_rtcp(self, packet: AnyRtcpPacket) -> None:
        """RTCP from the publisher addressed to this track's receiver (SR, BYE)."""
        if isinstance(packet, RtcpSrPacket):
            info = packet.sender_info
            self._sr_lsr = (info.ntp_timestamp >> 16) & 0xFFFFFFFF
            self._sr_time = time.time()
            if self.tap is not None:
                self.tap.on_sender_report(info.ntp_timestamp, info.rtp_timestamp)

    def report(self, now: float) -> list[AnyRtcpPacket]:
        """Receiver report block (RFC 3550 §6.4.2) and REMB for this track."""
        self.rate.snapshot(now)
        if self.media_ssrc is None or self._base_seq is None:
            return []
        expected = self._cycles + self._max_seq - self._base_seq + 1
        received = self.rate.packets
        exp_int = expected - self._expected_prior
        rec_int = received - self._received_prior
        self._expected_prior, self._received_prior = expected, received
        lost_int = exp_int - rec_int
        self.fraction_lost = (lost_int << 8) // exp_int if exp_int > 0 and lost_int > 0 else 0
        lost = max(-0x800000, min(expected - received, 0x7FFFFF))
        dlsr = 0
        if self._sr_time:
            delay = time.time() - self._sr_time
            if 0 < delay < 65536:
                dlsr = int(delay * 65536)
        packets: list[AnyRtcpPacket] = [
            RtcpRrPacket(
                ssrc=self.rtcp_ssrc,
                reports=[
                    RtcpReceiverInfo(
                        ssrc=self.media_ssrc,
                        fraction_lost=self.fraction_lost,
                        packets_lost=lost,
                        highest_sequence=(self._cycles + self._max_seq) & 0xFFFFFFFF,
                        jitter=self._jitter_q4 >> 4,
                        lsr=self._sr_lsr,
                        dlsr=dlsr,
                    )
                ],
            )
        ]
        if self.is_video and self.remb_bps:
            packets.append(self._remb())
            self._remb_sent = self.remb_bps
        return packets

    def _remb(self) -> RtcpPsfbPacket:
        """REMB (draft-alvestrand-rmcat-remb-03 §2.2) for this track's SSRC."""
        return RtcpPsfbPacket(
            fmt=RTCP_PSFB_APP,
            ssrc=self.rtcp_ssrc,
            media_ssrc=0,
            fci=pack_remb_fci(self.remb_bps, [self.media_ssrc or 0]),
        )

    def set_remb(self, bps: int) -> None:
        """The bitrate the publisher should send this track at (the receiver's estimate
        drives it); a clear decrease is sent at once (behind an empty receiver report, to
        stay a compound packet without RFC 5506 reduced-size RTCP), an increase with the
        next report."""
        self.remb_bps = bps
        if (
            self.is_video
            and self.media_ssrc is not None
            and bps < self._remb_sent * REMB_PROMPT_DECREASE
        ):
            self._remb_sent = bps
            compound = bytes(RtcpRrPacket(ssrc=self.rtcp_ssrc)) + bytes(self._remb())
            self._tasks.spawn(self._send_rtcp(compound))

    @property
    def packets_lost(self) -> int:
        if self._base_seq is None:
            return 0
        return max(0, self._cycles + self._max_seq - self._base_seq + 1 - self.rate.packets)

    @property
    def jitter_s(self) -> float:
        return (self._jitter_q4 >> 4) / self.clock_rate

    def close(self) -> None:
        self.closed = True
        if self.tap is not None:
            try:
                self.tap.close()
            except Exception:  # the recording loses its end; the leave must still complete
                logger.exception("recording_tap_close_failed")
            self.tap = None
        if self._pli_handle is not None:
            self._pli_handle.cancel()
            self._pli_handle = None
        self._tasks.cancel()
        for down in list(self.downtracks):
            down.detach()
        self.downtracks.clear()


__all__ = ["DownTrack", "UpTrack"]
