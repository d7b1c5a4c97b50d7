"""The one module that reaches into aiortc internals (pinned: aiortc 1.16, aioice 0.13).

The SFU keeps aiortc for what it does well — SDP offer/answer (RFC 9429 JSEP), ICE, DTLS and
SRTP key setup — and takes over the media plane:

* ``tap_rtp``: the DTLS transport's ``_handle_rtp_data`` (called with every decrypted RTP
  packet, RFC 3711) is replaced per transport, so received packets go to the forwarding
  engine as raw bytes instead of through ``RtpPacket.parse``, the jitter buffer and a decoder.
* ``take_over_sender``: the sender's RTCP loop is replaced (the engine sends its own sender
  reports, RFC 3550 §6.4.1, with real counters), its RTP loop waits on a silent track instead
  of polling, and RTCP feedback addressed to it (NACK, PLI, FIR, RR) goes to the engine.
* ``take_over_receiver``: sender reports from the publisher go to the engine (for the LSR /
  DLSR fields of our receiver reports, RFC 3550 §6.4.2).
* ``SrtpLink``: encrypt with the transport's SRTP session and write to the nominated ICE
  pair's UDP socket synchronously (no coroutine per packet).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiortc import MediaStreamTrack, RTCRtpReceiver, RTCRtpSender
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtp import AnyRtcpPacket

RtpHandler = Callable[[bytes, int], Awaitable[None]]
RtcpHandler = Callable[[AnyRtcpPacket], Awaitable[None]]


class IdleTrack(MediaStreamTrack):
    """A track that never yields a frame: keeps aiortc's sender RTP loop parked."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    async def recv(self) -> Any:
        await asyncio.Event().wait()  # until the sender cancels its RTP task


def tap_rtp(dtls: RTCDtlsTransport, handler: RtpHandler) -> None:
    """Route every decrypted RTP packet of ``dtls`` to ``handler(data, arrival_ms)``."""
    dtls._handle_rtp_data = handler  # type: ignore[method-assign, assignment]


@dataclass(slots=True)
class _Probe:
    ssrc: int
    payload_type: int


def route(dtls: RTCDtlsTransport, ssrc: int, payload_type: int) -> RTCRtpReceiver | None:
    """Ask aiortc's BUNDLE router which receiver owns (SSRC, PT) (RFC 8843 §9.2)."""
    receiver = dtls._rtp_router.route_rtp(_Probe(ssrc, payload_type))  # type: ignore[arg-type]
    return receiver  # type: ignore[return-value]


def take_over_sender(sender: RTCRtpSender, on_rtcp: RtcpHandler) -> None:
    """Park the sender's RTP loop, replace its RTCP loop, route its RTCP feedback to us."""
    sender.replaceTrack(IdleTrack(sender.kind))
    sender._handle_rtcp_packet = on_rtcp  # type: ignore[method-assign, assignment]
    started: asyncio.Event = sender._RTCRtpSender__rtcp_started  # type: ignore[attr-defined]
    exited: asyncio.Event = sender._RTCRtpSender__rtcp_exited  # type: ignore[attr-defined]

    async def idle_rtcp() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            exited.set()

    sender._run_rtcp = idle_rtcp  # type: ignore[method-assign]


def take_over_receiver(receiver: RTCRtpReceiver, on_rtcp: RtcpHandler) -> None:
    """Route RTCP addressed to the receiver (publisher SR, BYE) to us."""
    receiver._handle_rtcp_packet = on_rtcp  # type: ignore[method-assign, assignment]


def receiver_rtcp_ssrc(receiver: RTCRtpReceiver) -> int | None:
    """The SSRC aiortc uses as sender of this receiver's RTCP feedback."""
    ssrc: int | None = receiver._RTCRtpReceiver__rtcp_ssrc  # type: ignore[attr-defined]
    return ssrc


def sender_rtx_ssrc(sender: RTCRtpSender) -> int:
    return sender._rtx_ssrc


class SrtpLink:
    """Synchronous SRTP-protect-and-send over a connected DTLS transport (RFC 3711 §3.3)."""

    __slots__ = ("_addr", "_protect", "_transport", "dtls", "sent_bytes")

    def __init__(self, dtls: RTCDtlsTransport) -> None:
        self.dtls = dtls
        self._protect: Callable[[bytes], bytes] | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._addr: tuple[str, int] | None = None
        self.sent_bytes = 0

    def open(self) -> bool:
        """Bind to the SRTP session and nominated ICE pair; False if not connected yet."""
        if self.dtls.state != "connected":
            return False
        pair = self.dtls.transport._connection._nominated.get(1)
        srtp = self.dtls._tx_srtp
        if pair is None or srtp is None:
            return False
        self._protect = srtp.protect
        self._transport = pair.protocol.transport
        self._addr = pair.remote_addr
        return True

    def close(self) -> None:
        self._protect = None
        self._transport = None

    @property
    def is_open(self) -> bool:
        t = self._transport
        if t is None:
            return False
        # A relayed pair's transport is aioice's TurnTransport (RFC 8656), which has no
        # is_closing(): it is open until closed, and its sendto() drops data after that.
        is_closing = getattr(t, "is_closing", None)
        return is_closing is None or not is_closing()

    def backlog(self) -> int:
        """Bytes queued in the socket transport (asyncio buffers when the kernel says EAGAIN).

        Always 0 on a TURN relay: aioice sends each datagram from its own task there, so the
        backlog is invisible and congestion is not detected on relayed pairs."""
        get_size = getattr(self._transport, "get_write_buffer_size", None)
        return int(get_size()) if get_size is not None else 0

    def send(self, packet: bytes) -> bool:
        """Encrypt and send one RTP packet; False if the link is down."""
        t = self._transport
        if t is None or self._protect is None:
            return False
        data = self._protect(packet)
        t.sendto(data, self._addr)
        self.sent_bytes += len(data)
        return True

    async def send_rtcp(self, data: bytes) -> None:
        """Send a compound RTCP packet through aiortc (low rate, keeps its counters right)."""
        try:
            await self.dtls._send_rtp(data)
        except ConnectionError:
            pass
