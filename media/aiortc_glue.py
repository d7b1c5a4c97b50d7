"""The one module that reaches into aiortc, aioice and pylibsrtp internals.

Those libraries are pinned to exact versions in setup.cfg (tests/media/test_pins.py fails when
the installed ones differ); check every function here before moving a pin.

The SFU keeps aiortc for what it does well — SDP offer/answer (RFC 9429 JSEP), ICE, DTLS and
SRTP key setup — and takes over the media plane:

* ``receive_srtp``: once DTLS is connected, our own reader drains each ICE socket; SRTP
  packets (RFC 7983 §7 demultiplexing by first byte) are unprotected in place (RFC 3711
  §3.3) and handed to the forwarding engine as raw bytes: no STUN parse attempt, no aioice
  queue, no DTLS task wake-up, no ``RtpPacket.parse``, jitter buffer or decoder. STUN, DTLS
  and SRTCP still take aioice's and aiortc's path. ``tap_rtp`` routes the few RTP packets
  aiortc queued before that to the same handler.
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
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from aioice.ice import Connection, StunProtocol
from aiortc import (
    MediaStreamTrack,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
    sdp,
)
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpparameters import (
    RTCRtcpFeedback,
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
)
from aiortc.rtp import AnyRtcpPacket
from pylibsrtp._binding import ffi as _srtp_ffi
from pylibsrtp._binding import lib as _srtp_lib

from media.packets import RTP_HEADER
from media.playout_delay import PLAYOUT_DELAY_URI
from media.transport_seq import TransportSequencer
from media.twcc import RTCP_RTPFB, RTCP_RTPFB_TWCC, TRANSPORT_CC_URI
from media.udp_mux import MuxTransport

RtpHandler = Callable[[bytes, int], None]
"""Called with one decrypted RTP packet and its arrival time (monotonic milliseconds)."""
RtcpHandler = Callable[[AnyRtcpPacket], Awaitable[None]]
_srtp_protect = _srtp_lib.srtp_protect
logger = logging.getLogger(__name__)
_srtp_unprotect = _srtp_lib.srtp_unprotect


class IdleTrack(MediaStreamTrack):
    """A track that never yields a frame: keeps aiortc's sender RTP loop parked."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    async def recv(self) -> Any:
        await asyncio.Event().wait()  # until the sender cancels its RTP task


def offer_direction(t: RTCRtpTransceiver) -> str | None:
    """The direction the remote offer gave this m-section (RFC 9429 §5.3.1), as aiortc kept it."""
    direction: str | None = t._offerDirection
    return direction


def transceiver_codecs(t: RTCRtpTransceiver) -> list[RTCRtpCodecParameters]:
    """The codecs negotiated for ``t`` (aiortc has no public accessor)."""
    return list(t._codecs)


def set_transceiver_codecs(t: RTCRtpTransceiver, codecs: list[RTCRtpCodecParameters]) -> None:
    """Provisional codecs before the answer, so payload types can be picked early."""
    t._codecs = codecs


def answer_congestion_control(pc: RTCPeerConnection, offer: str) -> int | None:
    """Before answering ``offer`` (applied as the remote description): per m-section, see
    ``_answer_congestion_control``. Returns the transport-wide sequence number extension's
    id (one for the BUNDLE group, RFC 8843 §9.1), None if none was offered."""
    offered = {m.rtp.muxId: m for m in sdp.SessionDescription.parse(offer).media}
    ids = set()
    for t in pc.getTransceivers():
        media = offered.get(t.mid or "")
        if media is not None:
            ids.add(_answer_congestion_control(t, media))
    ids.discard(None)
    return ids.pop() if len(ids) == 1 else None


def _answer_congestion_control(t: RTCRtpTransceiver, offered: sdp.MediaDescription) -> int | None:
    """Accept the m-section's transport-wide sequence number extension and ``transport-cc``
    feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01 §4), which aiortc does not
    know, and ask for Opus in-band FEC and DTX (RFC 7587 §6.1: the receiver's
    ``useinbandfec=1; usedtx=1``); on video, accept the playout-delay extension
    (``media.playout_delay``). Returns the transport-wide extension's id, None if not offered."""
    for codec in t._codecs:
        if codec.mimeType.lower() == "audio/opus":
            codec.parameters = {**codec.parameters, "useinbandfec": 1, "usedtx": 1}
    if t.kind == "video":
        _accept_extension(t, offered, PLAYOUT_DELAY_URI)
    ext = _accept_extension(t, offered, TRANSPORT_CC_URI)
    if ext is None:
        return None
    with_feedback = {
        c.payloadType
        for c in offered.rtp.codecs
        if any(f.type == "transport-cc" for f in c.rtcpFeedback)
    }
    for codec in t._codecs:
        if codec.payloadType in with_feedback and all(
            f.type != "transport-cc" for f in codec.rtcpFeedback
        ):
            codec.rtcpFeedback = [*codec.rtcpFeedback, RTCRtcpFeedback(type="transport-cc")]
    return int(ext.id)


def _accept_extension(
    t: RTCRtpTransceiver, offered: sdp.MediaDescription, uri: str
) -> RTCRtpHeaderExtensionParameters | None:
    """Map ``uri`` in our answer to the id the m-section offered it with (RFC 8285 §5: the
    answer keeps the offer's id); the offered mapping, None if not offered."""
    ext = next((x for x in offered.rtp.headerExtensions if x.uri == uri), None)
    if ext is not None and all(x.uri != uri for x in t._headerExtensions):
        t._headerExtensions.append(RTCRtpHeaderExtensionParameters(id=ext.id, uri=ext.uri))
    return ext


def extension_id(pc: RTCPeerConnection, uri: str) -> int | None:
    """The id ``uri`` is mapped to in the negotiated BUNDLE group, if any."""
    return next(
        (int(x.id) for t in pc.getTransceivers() for x in t._headerExtensions if x.uri == uri),
        None,
    )


def set_stream_id(sender: RTCRtpSender, stream_id: str) -> None:
    """Describe the sender's track as part of the stream ``stream_id`` in our next SDP (the
    msid's first half, RFC 8830 §2); aiortc sets it only for ``addTrack``, to a random id."""
    sender._stream_id = stream_id


def sender_ssrc(sender: RTCRtpSender) -> int:
    ssrc: int = sender._ssrc
    return ssrc


def ice_connections(pc: RTCPeerConnection) -> Iterator[Connection]:
    """Every aioice agent of ``pc`` (one per transport; bundled transports repeat)."""
    for transceiver in pc.getTransceivers():
        yield transceiver.receiver.transport.transport.iceGatherer._connection
        yield transceiver.sender.transport.transport.iceGatherer._connection
    if pc.sctp is not None:
        yield pc.sctp.transport.transport.iceGatherer._connection


def selected_pair(pc: RTCPeerConnection) -> dict[str, str]:
    """Candidate types (RFC 8445 §5.1.1: ``host``, ``srflx``, ``prflx``, ``relay``) and transport
    of the nominated pair of ``pc``'s first ICE transport (all media is bundled), or ``{}``
    before one is nominated: aioice keeps the pair in ``Connection._nominated``."""
    transceivers = pc.getTransceivers()
    if not transceivers:
        return {}
    pair = transceivers[0].receiver.transport.transport.iceGatherer._connection._nominated.get(1)
    if pair is None:
        return {}
    return {
        "local_candidate_type": pair.local_candidate.type,
        "remote_candidate_type": pair.remote_candidate.type,
        "protocol": pair.local_candidate.transport.lower(),
    }


def ice_protocols(connection: Connection) -> list[StunProtocol]:
    """The agent's live socket protocols (appending one adds a local candidate's socket)."""
    protocols: list[StunProtocol] = connection._protocols
    return protocols


def arrival_ms() -> int:
    return time.monotonic_ns() // 1_000_000


def tap_rtp(dtls: RTCDtlsTransport, handler: RtpHandler) -> None:
    """Route the RTP packets aiortc decrypts for ``dtls`` to ``handler(data, arrival_ms)``."""

    async def handle(data: bytes, arrival_time_ms: int) -> None:
        handler(data, arrival_ms())

    dtls._handle_rtp_data = handle  # type: ignore[method-assign]


_READS_PER_WAKEUP = 32
# One receive buffer for every socket: the event loop is single-threaded and a datagram is
# handled (copied out or forwarded) before the next one is read.
_rx_cdata = _srtp_ffi.new("char[]", 65536)
_rx_buf = _srtp_ffi.buffer(_rx_cdata)
_rx_view = memoryview(_rx_buf)
_rx_len = _srtp_ffi.new("int *")


def _is_srtp(n: int) -> bool:
    """RFC 7983 §7: a first byte in 128..191 is RTP or RTCP; RFC 5761 §4: a second byte in
    192..223 (an RTCP packet type) is RTCP."""
    return n >= 12 and 127 < _rx_view[0] < 192 and not 191 < _rx_view[1] < 224


def receive_buffer() -> Any:
    """The receive buffer every media socket reads into (a node's shared UDP port too, so
    its SRTP is unprotected in place like a per-connection socket's)."""
    return _rx_buf


def set_local_ufrag(connection: Connection, ufrag: str) -> None:
    """Replace the agent's ICE ufrag before it gathers (RFC 8839 §5.4; aiortc reads it
    again for the SDP after gathering): a shared UDP port routes by it and needs it unique."""
    connection._local_username = ufrag


def receive_srtp(dtls: RTCDtlsTransport, handler: RtpHandler) -> None:
    """Take over the receive path of the connected ``dtls`` for SRTP: unprotect each RTP
    packet in place in the receive buffer (RFC 3711 §3.3; one failing authentication is
    dropped) and pass it to ``handler``. STUN, DTLS and SRTCP (low rate; routed by aiortc to
    senders and receivers) go on to aioice as before.

    Each host socket gets our own reader, which drains up to ``_READS_PER_WAKEUP`` datagrams
    per event-loop wake-up with ``recvfrom_into`` instead of asyncio's one ``recvfrom`` (and
    a 256 KiB allocation) per datagram. On a node's shared UDP port (``media.udp_mux``) the
    port already reads that way: the agent's route delivers to the same function. A pair the
    SFU itself relays through TURN (RFC 8656) has no socket of its own and keeps aiortc's path.
    """
    session = dtls._rx_srtp
    if session is None:
        return
    loop = asyncio.get_running_loop()

    def deliver(n: int, addr: Any, stun: Callable[[bytes, Any], None]) -> None:
        if not _is_srtp(n):
            stun(_rx_buf[0:n], addr)
            return
        _rx_len[0] = n
        # through ``session``: the reader must keep the libsrtp context alive until it goes
        if _srtp_unprotect(session._srtp[0], _rx_cdata, _rx_len) == 0:
            handler(_rx_buf[0 : _rx_len[0]], arrival_ms())

    for protocol in dtls.transport._connection._protocols:
        transport: Any = protocol.transport
        stun = protocol.datagram_received
        if isinstance(transport, MuxTransport):

            def sink(n: int, addr: Any, stun: Any = stun) -> None:
                deliver(n, addr, stun)

            transport.route.sink = sink
            continue
        sock = getattr(transport, "_sock", None)
        if sock is None:
            continue  # relayed (TURN): aiortc's path, through ``tap_rtp``

        def read_ready(sock: Any = sock, transport: Any = transport, stun: Any = stun) -> None:
            for _ in range(_READS_PER_WAKEUP):
                if transport._conn_lost:
                    return
                try:
                    n, addr = sock.recvfrom_into(_rx_buf)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError as exc:
                    transport._protocol.error_received(exc)
                    return
                deliver(n, addr, stun)

        # replaces the transport's own reader; its close() removes ours by file descriptor
        loop._add_reader(sock.fileno(), read_ready)  # type: ignore[attr-defined]


@dataclass(slots=True)
class _Probe:
    ssrc: int
    payload_type: int


def route(dtls: RTCDtlsTransport, ssrc: int, payload_type: int) -> RTCRtpReceiver | None:
    """Ask aiortc's BUNDLE router which receiver owns (SSRC, PT) (RFC 8843 §9.2)."""
    receiver = dtls._rtp_router.route_rtp(_Probe(ssrc, payload_type))  # type: ignore[arg-type]
    return receiver  # type: ignore[return-value]


def _guarded(on_rtcp: RtcpHandler) -> RtcpHandler:
    """aiortc awaits RTCP handlers inside its DTLS transport's receive loop, and an exception
    there ends that loop and closes the transport (``RTCDtlsTransport.__run``): one packet
    our handler cannot take would end the call. It is logged and the next packet handled."""

    async def handle(packet: AnyRtcpPacket) -> None:
        try:
            await on_rtcp(packet)
        except Exception:
            logger.exception("rtcp_handler_failed", extra={"packet": type(packet).__name__})

    return handle


def take_over_sender(sender: RTCRtpSender, on_rtcp: RtcpHandler) -> None:
    """Park the sender's RTP loop, replace its RTCP loop, route its RTCP feedback to us."""
    sender.replaceTrack(IdleTrack(sender.kind))
    sender._handle_rtcp_packet = _guarded(on_rtcp)  # type: ignore[method-assign, assignment]
    started: asyncio.Event = sender._RTCRtpSender__rtcp_started  # type: ignore[attr-defined]
    exited: asyncio.Event = sender._RTCRtpSender__rtcp_exited  # type: ignore[attr-defined]

    async def idle_rtcp() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            exited.set()

    sender._run_rtcp = idle_rtcp  # type: ignore[method-assign]


def tap_transport_feedback(dtls: RTCDtlsTransport, handler: Callable[[bytes], None]) -> None:
    """Hand each transport-wide feedback packet (RTPFB FMT 15) of ``dtls``'s decrypted RTCP
    to ``handler`` as bytes, before aiortc parses the compound: aiortc would read its FCI as
    NACK pairs (``RtcpRtpfbPacket``) and route it by media SSRC, losing it."""
    original = dtls._handle_rtcp_data

    async def handle(data: bytes) -> None:
        i = 0
        while i + 4 <= len(data):
            end = i + 4 * (((data[i + 2] << 8) | data[i + 3]) + 1)
            if data[i + 1] == RTCP_RTPFB and data[i] & 0x1F == RTCP_RTPFB_TWCC:
                try:
                    handler(bytes(data[i:end]))
                except Exception:  # an estimator fault must not end aiortc's receive loop
                    logger.exception("transport_feedback_failed")
            i = end
        await original(data)

    dtls._handle_rtcp_data = handle  # type: ignore[method-assign]


def take_over_receiver(receiver: RTCRtpReceiver, on_rtcp: RtcpHandler) -> None:
    """Route RTCP addressed to the receiver (publisher SR, BYE) to us."""
    receiver._handle_rtcp_packet = _guarded(on_rtcp)  # type: ignore[method-assign, assignment]


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
        "_transport",
        "_view",
        "dtls",
        "sequencer",
    )

    def __init__(self, dtls: RTCDtlsTransport) -> None:
        self.dtls = dtls
        self._session: Any = None
        self._sock: Any = None
        self._relay: Any = None
        self._transport: Any = None
        self._addr: tuple[str, int] | None = None
        self.sequencer: TransportSequencer | None = None
        """Numbers every packet sent (``media.transport_seq``) once the subscriber negotiated
        transport-wide congestion control; None: the plain 12-byte header."""

    def open(self) -> bool:
        """Bind to the SRTP session and nominated ICE pair; False if not connected yet."""
        if self.dtls.state != "connected":
            return False
        pair = self.dtls.transport._connection._nominated.get(1)
        session = self.dtls._tx_srtp
        if pair is None or session is None:
            return False
        transport: Any = pair.protocol.transport
        # a node's shared UDP port (media.udp_mux) or the pair's own socket
        shared = isinstance(transport, MuxTransport)
        sock = transport.socket if shared else getattr(transport, "_sock", None)
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
        self._transport = transport
        self._addr = pair.remote_addr
        return True

    def close(self) -> None:
        self._sock = None
        self._relay = None
        self._transport = None
        self._session = None

    @property
    def is_open(self) -> bool:
        if self._relay is not None:
            return True
        # a shared port outlives the agent: ask the agent's transport, not the socket
        return self._sock is not None and not self._transport.is_closing()

    def send_rtp(
        self, b1: int, seq: int, ts: int, ssrc: int, payload: bytes, b0: int = 0x80
    ) -> int:
        """Write a 12-byte RTP header (20 with the transport-wide sequence number, RFC 8285
        §4.2, 24 with a playout delay too) + ``payload``, protect, send. Returns SEND_*.
        ``b0``: version and flags (0xA0 for a padding-only packet, RFC 3550 §5.1)."""
        sock = self._sock
        sequencer = self.sequencer
        head = 12 if sequencer is None else sequencer.header_bytes
        n = head + len(payload)
        if (sock is None and self._relay is None) or n > _MAX_RTP:
            return SEND_DOWN
        buf = self._buf
        if sequencer is None:
            RTP_HEADER.pack_into(buf, 0, b0, b1, seq, ts, ssrc)
        else:
            sequencer.pack_header(buf, b0, b1, seq, ts, ssrc)
        buf[head:n] = payload
        length = self._len
        length[0] = n
        if _srtp_protect(self._srtp, self._cdata, length):
            return SEND_DOWN
        size = length[0]
        if sock is None:
            self._relay.sendto(bytes(self._view[:size]), self._addr)
        else:
            try:
                sock.sendto(self._view[:size], self._addr)
            except BlockingIOError:
                return SEND_CONGESTED
            except OSError:
                return SEND_DOWN
        if sequencer is not None:
            # only a packet that left takes its number: no gap the network did not cause
            sequencer.sent(size, time.monotonic_ns() // 1000)
        return SEND_OK

    async def send_rtcp(self, data: bytes) -> None:
        """Send a compound RTCP packet through aiortc (low rate, keeps its counters right)."""
        try:
            await self.dtls._send_rtp(data)
        except ConnectionError:
            pass


_EXTMAP_IDS = range(1, 15)  # one-byte header form (RFC 8285 §4.2); 15 is reserved


async def create_offer(pc: RTCPeerConnection) -> RTCSessionDescription:
    """A subsequent offer (RFC 9429 §5.2.2) that keeps the negotiated header-extension ids.

    aiortc's ``createOffer`` resets every transceiver to its own default extmap ids (mid = 1,
    ...), while the answer to the client's offer used the client's ids (Chromium: audio
    level = 1, mid = 4 ...). Re-mapping a negotiated id is forbidden (RFC 8285 §6: the
    mapping stays for the session) and Chromium rejects an offer whose BUNDLE group maps one
    id to two extensions. So: negotiated m-sections keep their extensions as negotiated; new
    ones take the id the BUNDLE group already uses for the URI, else a free id. Negotiated
    m-sections keep their codecs too (payload types, RFC 3264 §8.3.2, and what
    ``answer_congestion_control`` added: transport-cc feedback, Opus FEC/DTX).
    """
    negotiated = {
        t: list(t._headerExtensions)
        for t in pc.getTransceivers()
        if t.mid is not None and t.currentDirection is not None
    }
    negotiated_codecs = {t: list(t._codecs) for t in negotiated}
    offer = await pc.createOffer()
    ids = {x.uri: x.id for extensions in negotiated.values() for x in extensions}
    for t in pc.getTransceivers():
        if t in negotiated:
            t._headerExtensions = negotiated[t]
            t._codecs = negotiated_codecs[t]
            continue
        # the SFU numbers what it sends on this m-section too, and on video may ask for a
        # playout delay (media.playout_delay)
        added = [TRANSPORT_CC_URI, PLAYOUT_DELAY_URI] if t.kind == "video" else [TRANSPORT_CC_URI]
        t._headerExtensions = [
            *t._headerExtensions,
            *(RTCRtpHeaderExtensionParameters(id=ids[uri], uri=uri) for uri in added if uri in ids),
        ]
        extensions = []
        for x in t._headerExtensions:
            if x.uri not in ids:
                free = [i for i in _EXTMAP_IDS if i not in ids.values()]
                if not free:
                    continue  # no id left: offer the m-section without this extension
                ids[x.uri] = free[0]
            extensions.append(RTCRtpHeaderExtensionParameters(id=ids[x.uri], uri=x.uri))
        t._headerExtensions = extensions
    description = sdp.SessionDescription.parse(offer.sdp)
    for t in pc.getTransceivers():
        index = t._get_mline_index()
        if index is not None and index < len(description.media):
            media = description.media[index]
            media.rtp.headerExtensions = list(t._headerExtensions)
            if t in negotiated_codecs:
                media.rtp.codecs = list(t._codecs)
                media.fmt = [c.payloadType for c in t._codecs]
            elif TRANSPORT_CC_URI in ids:
                _offer_transport_cc_feedback(media.rtp.codecs)
    return RTCSessionDescription(sdp=str(description), type="offer")


def _offer_transport_cc_feedback(codecs: list[RTCRtpCodecParameters]) -> None:
    """Offer ``a=rtcp-fb:<pt> transport-cc`` (draft-holmer-rmcat-transport-wide-cc-extensions-01
    §4) on a new m-section's media codecs: without it the browser sends no feedback about them."""
    for codec in codecs:
        feedback = codec.rtcpFeedback
        if codec.name.lower() != "rtx" and all(f.type != "transport-cc" for f in feedback):
            codec.rtcpFeedback = [*codec.rtcpFeedback, RTCRtcpFeedback(type="transport-cc")]
