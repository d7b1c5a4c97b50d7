"""A subscriber's copy of a published track (``DownTrack``): rewrites each source packet's
header into its own sequence-number and timestamp space (RFC 3550 §5.1, RFC 7667 §3.7),
answers the subscriber's feedback (NACK within the downlink's budget, PLI/FIR, receiver
reports into ``media.congestion``; its REMB is ignored, see there), sends its sender
reports, and holds video back while the subscriber's downlink is paused.
``media.forwarder`` describes the whole path.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

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
)

from media.aiortc_glue import SEND_CONGESTED, SEND_OK, SrtpLink
from media.congestion import Downlink, LossWindow
from media.packets import RTX_OSN
from media.playout_delay import PlayoutFloor, element_value
from media.stats import RateWindow

if TYPE_CHECKING:  # the forwarder imports this module
    from media.forwarder import UpTrack

RETRANSMIT_DEADLINE_S = 1.0
"""A retransmission is sent only if the packet's age plus half the round-trip time is below
this: later, the receiver's jitter buffer has given up on it (libwebrtc waits at most ~1 s)."""
RETRANSMITS_PER_PACKET = 2
RETRANSMIT_MEMORY = 2048
_PADDING = bytes(254) + b"\xff"
"""A padding-only packet's payload: 255 bytes of padding, the last one counting them."""


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
        self._retransmits: dict[tuple[int, float], int] = {}
        """Retransmissions per packet (output sequence number, arrival time): only the NACK
        path touches it; forgotten every ``RETRANSMIT_MEMORY`` packets."""
        self._padding_sent = False
        self._loss = LossWindow()
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
        self.unrecoverable = 0
        """NACKed packets that will not be resent (count or deadline): each asked for a
        keyframe (rate limited by the publisher track)."""
        self.padding_sent = 0
        self.plis_received = 0
        self.firs_received = 0
        self.rate = RateWindow()
        self.rtt_s: float | None = None
        self.playout = PlayoutFloor()
        """The minimum playout delay asked of the subscriber (video; ``media.playout_delay``)."""
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

    def send_padding(self, packets: int) -> int:
        """Padding-only packets (RFC 3550 §5.1: P bit, 255 bytes of padding, the timestamp of
        the last packet sent), a bandwidth probe; returns how many were sent.

        Paused, they go on the video SSRC and continue its sequence numbers: the next
        forwarded packet rebases after them (``_rebase``). Forwarding, they go on the RTX SSRC
        (RFC 4588) with its own sequence numbers, as libwebrtc pads when RTX is negotiated:
        the receiver counts them for transport-wide feedback, then drops them (no OSN). On
        the video SSRC they would take numbers the forwarded stream maps the publisher's
        onto by a fixed offset (NACKs and late packets map back through it), and between
        the packets of a frame they would break it for the depacketizer. Without RTX
        nothing is sent while forwarding."""
        if not self.active:
            return 0
        if self.paused:
            sent = self._send_padding(packets, self._pt, self.ssrc, (self.last_seq + 1) & 0xFFFF)
            self.last_seq = (self.last_seq + sent) & 0xFFFF
            self._padding_sent = self._padding_sent or sent > 0
        elif self._rtx_pt is not None:
            sent = self._send_padding(packets, self._rtx_pt, self.rtx_ssrc, self._rtx_seq)
            self._rtx_seq = (self._rtx_seq + sent) & 0xFFFF
        else:
            return 0
        self.padding_sent += sent
        return sent

    def _send_padding(self, packets: int, pt: int, ssrc: int, first_seq: int) -> int:
        for k in range(packets):
            seq = (first_seq + k) & 0xFFFF
            if self.link.send_rtp(pt, seq, self.last_ts, ssrc, _PADDING, 0xA0):
                return k
        return packets

    def forward(self, seq: int, ts: int, b1: int, payload: bytes, key: bool, now: float) -> None:
        """Send one source packet (``now``: its arrival, ``time.monotonic()``)."""
        if not self.active or self.paused:
            return
        if self._need_start:
            if not key:
                return
            self._rebase(seq, ts)
        out_seq = (seq + self._seq_off) & 0xFFFF
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
        if self.kind == "video":
            self._ask_playout_delay(report.fraction_lost / 256)
        if self.paused and not self._padding_sent:
            return  # nothing was sent since the last report: its loss says nothing
        fraction_lost = self._loss.fraction(report.highest_sequence, report.packets_lost)
        if fraction_lost is None:
            return  # too few packets since the last verdict to tell
        probed, self._padding_sent = self._padding_sent, False
        if self.downlink is not None and self.on_downlink_change is not None:
            changed = self.downlink.on_report(fraction_lost, self.rtt_s, probed)
            self.on_downlink_change(changed)

    def _ask_playout_delay(self, fraction_lost: float) -> None:
        """Ask the subscriber for room to repair a lost packet before its frame is due (see
        ``media.playout_delay``), where it negotiated the extension."""
        sequencer = self.link.sequencer
        if sequencer is None or not sequencer.playout_element:
            return
        min_ms = self.playout.on_report(fraction_lost, self.rtt_s)
        if min_ms or sequencer.playout >= 0:  # once asked, "0" must be said to give it back
            sequencer.set_playout(element_value(min_ms))

    def _retransmit(self, out_seq: int) -> None:
        """Answer one NACKed sequence number from the source's history (RFC 4588 §4), if
        the budget allows: see ``RETRANSMIT_DEADLINE_S``, ``RETRANSMITS_PER_PACKET`` and the
        downlink's ``RetransmitBudget``. A video packet past the count or the deadline asks
        the publisher for a keyframe (RFC 4585 §6.3.1) on the subscriber's behalf."""
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
        key = (out_seq, arrived)
        downlink = self.downlink
        if (
            self._retransmits.get(key, 0) >= RETRANSMITS_PER_PACKET
            or now - arrived + (self.rtt_s or 0.0) / 2 > RETRANSMIT_DEADLINE_S
        ):
            # this packet will not be resent: its frame, and every frame after it until a
            # keyframe, cannot be decoded. Chromium asks for a keyframe itself only after
            # 3 s without a decodable frame (libwebrtc's max_wait_for_frame); asking now ends
            # the freeze a loss burst leaves (the onset of a narrow link, bench/netq.py)
            self.retransmits_refused += 1
            self.unrecoverable += 1
            src.request_keyframe()
            return
        # on a link whose loss is random and round trip long (a playout delay asked for), the
        # repair goes twice: a lost retransmission would cost a second round trip, more
        # than the delay covers (3 % loss: ~0.1 % of packets, several freezes a minute)
        copies = 2 if self.playout.min_ms else 1
        if downlink is not None and not downlink.budget.take(copies * (len(payload) + 14), now):
            self.retransmits_refused += 1  # the receiver may ask again once there is room
            return
        if len(self._retransmits) >= RETRANSMIT_MEMORY:
            self._retransmits.clear()
        self._retransmits[key] = self._retransmits.get(key, 0) + 1
        out_ts = (ts + self._ts_off) & 0xFFFFFFFF
        rtx_pt = self._rtx_pt
        if rtx_pt is not None:  # RFC 4588 §4: OSN + original payload on the RTX SSRC
            payload = RTX_OSN.pack(out_seq) + payload
        for _ in range(copies):
            if rtx_pt is not None:
                result = self.link.send_rtp(
                    (b1 & 0x80) | rtx_pt, self._rtx_seq, out_ts, self.rtx_ssrc, payload
                )
                self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
            else:
                result = self.link.send_rtp(
                    (b1 & 0x80) | self._pt, out_seq, out_ts, self.ssrc, payload
                )
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
