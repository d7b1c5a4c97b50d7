"""The one module that reaches into aiortc internals (pinned: aiortc 1.16, aioice 0.13).

The SFU keeps aiortc for what it does well — SDP offer/answer (RFC 9429 JSEP), ICE, DTLS and
SRTP key setup — and takes over the media plane:

* ``receive_srtp``: once DTLS is connected, received SRTP packets (RFC 7983 §7 demultiplexing
  by first byte) are unprotected (RFC 3711 §3.3) in the socket's datagram callback and handed
  to the forwarding engine as raw bytes: no STUN parse attempt, no aioice queue, no DTLS task
  wake-up, no ``RtpPacket.parse``, jitter buffer or decoder. STUN, DTLS and SRTCP still take
  aiortc's path. ``tap_rtp`` routes the few RTP packets aiortc queued before that to the
  same handler.
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
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiortc import MediaStreamTrack, RTCRtpReceiver, RTCRtpSender
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtp import AnyRtcpPacket
from pylibsrtp._binding import ffi as _srtp_ffi
from pylibsrtp._binding import lib as _srtp_lib

from media.packets import RTP_HEADER

RtpHandler = Callable[[bytes, int], None]
"""Called with one decrypted RTP packet and its arrival time (monotonic milliseconds)."""
RtcpHandler = Callable[[AnyRtcpPacket], Awaitable[None]]
_srtp_protect = _srtp_lib.srtp_protect
_srtp_unprotect = _srtp_lib.srtp_unprotect
_MAX_DATAGRAM = 2048


class IdleTrack(MediaStreamTrack):
    """A track that never yields a frame: keeps aiortc's sender RTP loop parked."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    async def recv(self) -> Any:
        await asyncio.Event().wait()  # until the sender cancels its RTP task


def arrival_ms() -> int:
    return time.monotonic_ns() // 1_000_000


def tap_rtp(dtls: RTCDtlsTransport, handler: RtpHandler) -> None:
    """Route the RTP packets aiortc decrypts for ``dtls`` to ``handler(data, arrival_ms)``."""

    async def handle(data: bytes, arrival_time_ms: int) -> None:
        handler(data, arrival_ms())

    dtls._handle_rtp_data = handle  # type: ignore[method-assign]


def receive_srtp(dtls: RTCDtlsTransport, handler: RtpHandler) -> None:
    """Unprotect received SRTP packets of the connected ``dtls`` in the datagram callback of
    each of its ICE sockets and pass them to ``handler``; other datagrams go on to aioice.

    RFC 7983 §7: a first byte in 128..191 is RTP or RTCP; RFC 5761 §4: a second byte in
    192..223 (an RTCP packet type) is RTCP, which stays on aiortc's path (low rate, routed
    to senders and receivers). A packet that fails authentication is dropped (RFC 3711 §3.3).
    """
    session = dtls._rx_srtp
    if session is None:
        return
    srtp = session._srtp[0]
    cdata = _srtp_ffi.new("char[]", _MAX_DATAGRAM)
    buf = _srtp_ffi.buffer(cdata)
    length = _srtp_ffi.new("int *")
    for protocol in dtls.transport._connection._protocols:
        if getattr(protocol, "_kundlinow_srtp", None) is session:
            continue
        protocol._kundlinow_srtp = session  # type: ignore[attr-defined]  # keeps libsrtp's context

        def datagram_received(
            data: bytes,
            addr: tuple[Any, ...],
            _stun: Callable[[bytes, tuple[Any, ...]], None] = protocol.datagram_received,
        ) -> None:
            n = len(data)
            if n < 12 or not 127 < data[0] < 192 or 191 < data[1] < 224 or n > _MAX_DATAGRAM:
                _stun(data, addr)
                return
            buf[0:n] = data
            length[0] = n
            if _srtp_unprotect(srtp, cdata, length) == 0:
                handler(buf[0 : length[0]], arrival_ms())

        protocol.datagram_received = datagram_received  # type: ignore[method-assign, assignment]


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


SEND_OK = 0
SEND_CONGESTED = 1
SEND_DOWN = 2
_MAX_RTP = 1500 - 16  # room for the SRTP auth tag / GCM tag (RFC 3711 §3.1, RFC 7714)


class SrtpLink:
    """Synchronous SRTP-protect-and-send over a connected DTLS transport (RFC 3711 §3.3).

    The packet is assembled in a C buffer, encrypted in place by libsrtp (through
    pylibsrtp's cffi binding, skipping its per-call allocations) and written with one
    non-blocking ``sendto`` on the nominated ICE pair's socket. A full socket buffer
    (``EAGAIN``) is reported as congestion: the caller drops instead of queueing.
    """

    __slots__ = (
        "_addr",
        "_buf",
        "_cdata",
        "_len",
        "_relay",
        "_session",
        "_sock",
        "_srtp",
        "_view",
        "dtls",
        "sent_bytes",
    )

    def __init__(self, dtls: RTCDtlsTransport) -> None:
        self.dtls = dtls
        self._session: Any = None
        self._sock: Any = None
        self._relay: Any = None
        self._addr: tuple[str, int] | None = None
        self.sent_bytes = 0

    def open(self) -> bool:
        """Bind to the SRTP session and nominated ICE pair; False if not connected yet."""
        if self.dtls.state != "connected":
            return False
        pair = self.dtls.transport._connection._nominated.get(1)
        session = self.dtls._tx_srtp
        if pair is None or session is None:
            return False
        transport = pair.protocol.transport
        sock = getattr(transport, "_sock", None)
        # A relayed pair (RFC 8656 TURN) has aioice's TurnTransport, no socket of its own:
        # its sendto() wraps each datagram for the relay.
        self._relay = None if sock is not None else transport
        self._session = session  # keeps the libsrtp context alive
        self._srtp = session._srtp[0]
        self._cdata = _srtp_ffi.new("char[]", 1500)
        self._buf = _srtp_ffi.buffer(self._cdata)
        self._view = memoryview(self._buf)
        self._len = _srtp_ffi.new("int *")
        self._sock = sock
        self._addr = pair.remote_addr
        return True

    def close(self) -> None:
        self._sock = None
        self._relay = None
        self._session = None

    @property
    def is_open(self) -> bool:
        if self._relay is not None:
            return True
        return self._sock is not None and self._sock.fileno() != -1

    def send_rtp(self, b1: int, seq: int, ts: int, ssrc: int, payload: bytes) -> int:
        """Write a 12-byte RTP header + ``payload``, protect, send. Returns SEND_*."""
        sock = self._sock
        n = 12 + len(payload)
        if (sock is None and self._relay is None) or n > _MAX_RTP:
            return SEND_DOWN
        buf = self._buf
        RTP_HEADER.pack_into(buf, 0, 0x80, b1, seq, ts, ssrc)
        buf[12:n] = payload
        length = self._len
        length[0] = n
        if _srtp_protect(self._srtp, self._cdata, length):
            return SEND_DOWN
        size = length[0]
        if sock is None:
            self._relay.sendto(bytes(self._view[:size]), self._addr)
            self.sent_bytes += size
            return SEND_OK
        try:
            sock.sendto(self._view[:size], self._addr)
        except BlockingIOError:
            return SEND_CONGESTED
        except OSError:
            return SEND_DOWN
        self.sent_bytes += size
        return SEND_OK

    async def send_rtcp(self, data: bytes) -> None:
        """Send a compound RTCP packet through aiortc (low rate, keeps its counters right)."""
        try:
            await self.dtls._send_rtp(data)
        except ConnectionError:
            pass
