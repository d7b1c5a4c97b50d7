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
  downlink estimate;
* a subscriber whose downlink estimate fell below the floor gets no video (``paused``);
* gaps from the publisher are NACKed upstream;
* a subscriber whose socket backs up is skipped to the next keyframe; nothing queues per
  subscriber, so one slow subscriber cannot delay the others.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable

from aiortc import clock
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import (
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    AnyRtcpPacket,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSourceInfo,
    RtcpSrPacket,
    pack_remb_fci,
    unpack_remb_fci,
)

from core.tasks import TaskSet
from media.aiortc_glue import SEND_CONGESTED, SEND_OK, SrtpLink
from media.congestion import Downlink
from media.observer import PacketTap
from media.packets import RTP_HEADER, RTX_OSN, keyframe_detector, seq_gt
from media.stats import RateWindow

logger = logging.getLogger(__name__)

RTCP_PSFB_APP = 15
RETRANSMIT_DEADLINE_S = 1.0
"""A retransmission is sent only if the packet's age plus half the round-trip time is below
this: later, the receiver's jitter buffer has given up on it (libwebrtc waits at most ~1 s)."""
RETRANSMITS_PER_PACKET = 2
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
        self._history: list[tuple[int, int, int, bytes, float] | None] = [None] * history
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
        self._history[seq & self._mask] = (seq, ts, b1, payload, now)
        tap = self.tap
        if tap is not None:
            tap.on_rtp(seq, ts, b1, payload, arrival_ms)
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
        drives it); a clear decrease is sent at once (RFC 5506 reduced-size RTCP), an
        increase with the next report."""
        self.remb_bps = bps
        if (
            self.is_video
            and self.media_ssrc is not None
            and bps < self._remb_sent * REMB_PROMPT_DECREASE
        ):
            self._remb_sent = bps
            self._tasks.spawn(self._send_rtcp(bytes(self._remb())))

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
            self.tap.close()
            self.tap = None
        if self._pli_handle is not None:
            self._pli_handle.cancel()
            self._pli_handle = None
        self._tasks.cancel()
        for down in list(self.downtracks):
            down.detach()
        self.downtracks.clear()


class DownTrack:
    """One subscriber's copy of a published track, sent on one aiortc sender's SSRC."""

    def __init__(
        self,
        *,
        subscriber_id: str,
        kind: str,
        ssrc: int,
        rtx_ssrc: int,
        codecs: list[RTCRtpCodecParameters],
        link: SrtpLink,
    ) -> None:
        self.subscriber_id = subscriber_id
        self.kind = kind
        self.ssrc = ssrc
        self.rtx_ssrc = rtx_ssrc
        self.codecs = codecs
        self.link = link
        self.source: UpTrack | None = None
        self.active = False
        self.paused = False
        """Video held back: the subscriber's downlink is below the floor (``set_paused``)."""
        self.downlink: Downlink | None = None
        """The subscriber's downlink (estimate, retransmission budget), once wired."""
        self._retransmits = bytearray(1024)
        """Retransmissions per output sequence number (indexed modulo 1024)."""
        self._padding_sent = False
        self.on_downlink_change: Callable[[bool], None] | None = None
        """Told after each feedback fed to ``downlink`` (True: its paused state changed)."""
        self._pt = 0
        self._rtx_pt: int | None = None
        self._clock_rate = 90000
        self._src_pt = -1
        self._need_start = True
        self._switched = True
        self._seq_off = 0
        self._ts_off = 0
        self.last_seq = random.randrange(0x8000)
        self.last_ts = random.randrange(1 << 32)
        self._last_time = time.monotonic()
        self._epoch_start = (self.last_seq + 1) & 0xFFFF
        self._rtx_seq = random.randrange(0x8000)
        # stats
        self.packets = 0
        self.bytes = 0
        self.frames = 0
        self.dropped = 0
        self.send_errors = 0
        self.nacks_received = 0
        self.retransmitted = 0
        self.retransmits_refused = 0
        self.padding_sent = 0
        self.plis_received = 0
        self.firs_received = 0
        self.rate = RateWindow()
        self.rtt_s: float | None = None
        self.remote_fraction_lost = 0
        self.remote_packets_lost = 0
        self.remote_jitter = 0
        self._sr_lsr = 0
        self._sr_time = 0.0

    # -- wiring -----------------------------------------------------------------------

    def matching_codec(self, codec: RTCRtpCodecParameters) -> RTCRtpCodecParameters | None:
        from aiortc.rtcpeerconnection import is_codec_compatible

        for c in self.codecs:
            if c.name.lower() != "rtx" and is_codec_compatible(c, codec):
                return c
        return None

    def can_carry(self, up: UpTrack) -> bool:
        return up.kind == self.kind and self.matching_codec(up.codec) is not None

    def attach(self, up: UpTrack) -> None:
        """Start forwarding ``up`` on this sender (from its next keyframe)."""
        self.detach()
        if not self._bind_codec(up):
            raise ValueError("codec not negotiated on this sender")
        self.source = up
        self._need_start = True
        self._switched = True
        up.downtracks.append(self)
        if self.active:
            up.request_keyframe()

    def set_codecs(self, codecs: list[RTCRtpCodecParameters]) -> None:
        """Negotiation finished: take the final payload types, keep forwarding state."""
        self.codecs = codecs
        if self.source is not None and not self._bind_codec(self.source):
            self.detach()

    def _bind_codec(self, up: UpTrack) -> bool:
        codec = self.matching_codec(up.codec)
        if codec is None:
            return False
        self._pt = codec.payloadType or 0
        self._clock_rate = codec.clockRate
        self._rtx_pt = next(
            (
                c.payloadType
                for c in self.codecs
                if c.name.lower() == "rtx" and c.parameters.get("apt") == codec.payloadType
            ),
            None,
        )
        self._src_pt = up.codec.payloadType or 0
        return True

    def detach(self) -> None:
        if self.source is not None:
            if self in self.source.downtracks:
                self.source.downtracks.remove(self)
            self.source = None

    def source_switched(self) -> None:
        self._need_start = True
        self._switched = True

    def activate(self) -> None:
        """The subscriber's transport is connected: start sending."""
        if self.link.is_open or self.link.open():
            self.active = True
            self._need_start = True
            if self.source is not None:
                self.source.request_keyframe()

    def deactivate(self) -> None:
        self.active = False

    # -- media path -------------------------------------------------------------------

    def set_paused(self, paused: bool) -> None:
        """Hold back or resume video; a resumed subscriber restarts on a keyframe."""
        if paused == self.paused:
            return
        self.paused = paused
        self._need_start = True
        if not paused and self.source is not None and self.active:
            self.source.request_keyframe()

    def send_padding(self, packets: int) -> None:
        """Padding-only packets (RFC 3550 §5.1 P bit, 255 bytes of padding) continuing this
        stream's sequence numbers: a bandwidth probe while video is paused."""
        if not self.active:
            return
        padding = bytes(254) + b"\xff"
        for _ in range(packets):
            seq = (self.last_seq + 1) & 0xFFFF
            if self.link.send_rtp(self._pt, seq, self.last_ts, self.ssrc, padding, 0xA0):
                return
            self.last_seq = seq
            self.padding_sent += 1
            self._padding_sent = True

    def forward(self, seq: int, ts: int, b1: int, payload: bytes, key: bool, now: float) -> None:
        """Send one source packet (``now``: its arrival, ``time.monotonic()``)."""
        if not self.active or self.paused:
            return
        if self._need_start:
            if not key:
                return
            self._rebase(seq, ts)
        out_seq = (seq + self._seq_off) & 0xFFFF
        self._retransmits[out_seq & 0x3FF] = 0
        out_ts = (ts + self._ts_off) & 0xFFFFFFFF
        pt = self._pt if (b1 & 0x7F) == self._src_pt else self._map_pt(b1 & 0x7F)
        if pt < 0:
            return
        result = self.link.send_rtp((b1 & 0x80) | pt, out_seq, out_ts, self.ssrc, payload)
        if result:
            if result == SEND_CONGESTED:
                # the socket buffer is full: skip to the next keyframe instead of queueing
                self.dropped += 1
                if self.kind == "video":
                    self._need_start = True
                    if self.source is not None:
                        self.source.request_keyframe()
            else:
                # one failed packet (SRTP error, unroutable) must not stop the stream for
                # good: only a closed link deactivates (the DTLS state change reactivates)
                self.send_errors += 1
                if not self.link.is_open:
                    self.active = False
            return
        if self.packets == 0 or ((out_seq - self.last_seq) & 0xFFFF) < 0x8000:
            self.last_seq = out_seq
            self.last_ts = out_ts
            self._last_time = now
        self.packets += 1
        self.bytes += len(payload)
        if b1 & 0x80:
            self.frames += 1

    def _map_pt(self, src_pt: int) -> int:
        if self.source is None:
            return -1
        codec = self.source._codec_by_pt.get(src_pt)
        mine = self.matching_codec(codec) if codec is not None else None
        return mine.payloadType or 0 if mine is not None else -1

    def _rebase(self, seq: int, ts: int) -> None:
        """Continue our sequence/timestamp space from this source packet (RFC 3550 §5.1:
        sequence numbers increase by one, timestamps follow the sampling clock)."""
        self._need_start = False
        self._seq_off = (self.last_seq + 1 - seq) & 0xFFFF
        if self._switched:
            elapsed = max(1, int((time.monotonic() - self._last_time) * self._clock_rate))
            self._ts_off = (self.last_ts + elapsed - ts) & 0xFFFFFFFF
            self._switched = False
        self._epoch_start = (self.last_seq + 1) & 0xFFFF
        self.last_seq = (self._epoch_start - 1) & 0xFFFF

    # -- RTCP from the subscriber -----------------------------------------------------

    async def on_rtcp(self, packet: AnyRtcpPacket) -> None:
        if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            self.nacks_received += 1
            for seq in packet.lost:
                self._retransmit(seq)
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
            if packet.fmt == RTCP_PSFB_PLI:
                self.plis_received += 1
            else:
                self.firs_received += 1
            if self.source is not None:
                self.source.request_keyframe()
        elif isinstance(packet, (RtcpRrPacket, RtcpSrPacket)):
            for report in packet.reports:
                if report.ssrc == self.ssrc:
                    self._on_report(report)
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            try:
                bitrate, _ = unpack_remb_fci(packet.fci)
            except ValueError:
                return
            if self.downlink is not None and self.on_downlink_change is not None:
                self.on_downlink_change(self.downlink.on_remb(bitrate))

    def _on_report(self, report: RtcpReceiverInfo) -> None:
        """One report block about this sender (RFC 3550 §6.4.2): loss, jitter, RTT from
        LSR/DLSR (§6.4.1), fed to the subscriber's downlink estimate."""
        self.remote_fraction_lost = report.fraction_lost
        self.remote_packets_lost = report.packets_lost
        self.remote_jitter = report.jitter
        if report.lsr and report.lsr == self._sr_lsr and self._sr_time:
            rtt = time.time() - self._sr_time - report.dlsr / 65536
            if rtt >= 0:
                self.rtt_s = rtt if self.rtt_s is None else 0.85 * self.rtt_s + 0.15 * rtt
        probed, self._padding_sent = self._padding_sent, False
        if self.paused and not probed:
            return  # nothing was sent since the last report: its loss says nothing
        if self.downlink is not None and self.on_downlink_change is not None:
            changed = self.downlink.on_report(report.fraction_lost / 256, self.rtt_s, probed)
            self.on_downlink_change(changed)

    def _retransmit(self, out_seq: int) -> None:
        """Answer one NACKed sequence number from the source's history (RFC 4588 §4), if
        the budget allows: see ``RETRANSMIT_DEADLINE_S``, ``RETRANSMITS_PER_PACKET`` and the
        downlink's ``RetransmitBudget``."""
        src = self.source
        if src is None or not self.active or self.paused:
            return
        span = (self.last_seq - self._epoch_start) & 0xFFFF
        if ((out_seq - self._epoch_start) & 0xFFFF) > span:
            return
        entry = src.packet((out_seq - self._seq_off) & 0xFFFF)
        if entry is None:
            return
        _, ts, b1, payload, arrived = entry
        now = time.monotonic()
        slot = out_seq & 0x3FF
        downlink = self.downlink
        if (
            self._retransmits[slot] >= RETRANSMITS_PER_PACKET
            or now - arrived + (self.rtt_s or 0.0) / 2 > RETRANSMIT_DEADLINE_S
            or (downlink is not None and not downlink.budget.take(len(payload) + 14, now))
        ):
            self.retransmits_refused += 1
            return
        self._retransmits[slot] += 1
        out_ts = (ts + self._ts_off) & 0xFFFFFFFF
        if self._rtx_pt is not None:  # RFC 4588 §4: OSN + original payload on the RTX SSRC
            result = self.link.send_rtp(
                (b1 & 0x80) | self._rtx_pt,
                self._rtx_seq,
                out_ts,
                self.rtx_ssrc,
                RTX_OSN.pack(out_seq) + payload,
            )
            self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
        else:
            result = self.link.send_rtp((b1 & 0x80) | self._pt, out_seq, out_ts, self.ssrc, payload)
        if result == SEND_OK:
            self.retransmitted += 1

    def report(self, now: float, cname: str) -> list[AnyRtcpPacket]:
        """Sender report (RFC 3550 §6.4.1) and SDES CNAME (§6.5.1) for this sender."""
        self.rate.bytes = self.bytes
        self.rate.packets = self.packets
        self.rate.snapshot(now)
        if not self.active or self.packets == 0:
            return []
        ntp = clock.current_ntp_time()
        rtp_ts = (
            self.last_ts + int((time.monotonic() - self._last_time) * self._clock_rate)
        ) & 0xFFFFFFFF
        self._sr_lsr = (ntp >> 16) & 0xFFFFFFFF
        self._sr_time = time.time()
        return [
            RtcpSrPacket(
                ssrc=self.ssrc,
                sender_info=RtcpSenderInfo(
                    ntp_timestamp=ntp,
                    rtp_timestamp=rtp_ts,
                    packet_count=self.packets & 0xFFFFFFFF,
                    octet_count=self.bytes & 0xFFFFFFFF,
                ),
            ),
            RtcpSdesPacket(chunks=[RtcpSourceInfo(ssrc=self.ssrc, items=[(1, cname.encode())])]),
        ]
