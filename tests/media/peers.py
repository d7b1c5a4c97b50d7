"""Real aiortc client peers for the media tests (the shared test fakes live here).

A ``Peer`` is a client as the signalling hub would drive it: it offers, applies the
server's answer, answers server ``call_offer`` messages, and records every *encoded* frame
its receivers reassemble — by replacing the receiver's decoder queue with one that keeps the
frame instead of decoding it (the pass-through decoder hook).
"""

from __future__ import annotations

import asyncio
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaPlayer

from media.engine import MediaEngine
from media.ice import IcePolicy, apply_ice_policy
from tests.media.shaping import UdpRelay

LOOPBACK = IcePolicy(host_addresses=("127.0.0.1",))


@dataclass(slots=True)
class Frame:
    at: float
    data: bytes
    timestamp: int


class RecordingQueue(queue.Queue[Any]):
    """Stands in for an aiortc receiver's decoder queue: keeps encoded frames."""

    def __init__(self, sink: list[Frame], own: list[Frame] | None = None) -> None:
        super().__init__()
        self.sink = sink
        self.own: list[Frame] = own if own is not None else []

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:
            super().put(None)
            return
        _codec, encoded = item
        frame = Frame(time.monotonic(), bytes(encoded.data), encoded.timestamp)
        self.sink.append(frame)
        self.own.append(frame)


class RecordingTrack(MediaStreamTrack):
    """Passes a pre-encoded track through, remembering every packet sent."""

    def __init__(self, source: MediaStreamTrack) -> None:
        super().__init__()
        self.kind = source.kind
        self.source = source
        self.sent: list[Frame] = []

    async def recv(self) -> Any:
        packet: Any = await self.source.recv()
        self.sent.append(Frame(time.monotonic(), bytes(packet), int(packet.pts or 0)))
        return packet

    def stop(self) -> None:
        super().stop()
        self.source.stop()


@dataclass
class Peer:
    engine: MediaEngine
    room_id: str
    participant_id: str
    pc: RTCPeerConnection = field(init=False)
    received: dict[str, list[Frame]] = field(default_factory=lambda: {"audio": [], "video": []})
    by_mid: dict[str, list[Frame]] = field(default_factory=dict)
    """Frames per m-section (``mid``), e.g. to check a server-added m-line on its own."""
    published: dict[str, RecordingTrack] = field(default_factory=dict)
    offers_answered: int = 0
    relay: UdpRelay | None = None
    """Reach the SFU through this shaping relay (tests/media/shaping.py)."""
    munge: Callable[[str], str] | None = None
    """Edit the offer before the SFU sees it."""
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _hooked: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))

    def publish_file(
        self,
        path: str,
        video_mime: str = "video/VP8",
        *,
        loop: bool = False,
        kinds: tuple[str, ...] = ("video", "audio"),
    ) -> MediaPlayer:
        """Send a pre-encoded file (``decode=False``), video with ``video_mime`` first."""
        player = MediaPlayer(path, decode=False, loop=loop)
        for source in (player.video, player.audio):
            if source is not None and source.kind in kinds:
                track = RecordingTrack(source)
                self.published[track.kind] = track
                t = self.pc.addTransceiver(track, direction="sendrecv")
                if track.kind == "video":
                    caps = RTCRtpSender.getCapabilities("video").codecs
                    t.setCodecPreferences(
                        [c for c in caps if c.mimeType.lower() == video_mime.lower()][:1]
                        + [c for c in caps if c.name.lower() == "rtx"][:1]
                    )
        return player

    def receive(self, *kinds: str) -> None:
        for kind in kinds:
            self.pc.addTransceiver(kind, direction="recvonly")

    def _hook_receivers(self) -> None:
        for t in self.pc.getTransceivers():
            r = t.receiver
            if id(r) in self._hooked:
                continue
            self._hooked.add(id(r))
            own = self.by_mid.setdefault(str(t.mid), [])
            r._RTCRtpReceiver__decoder_queue = RecordingQueue(self.received[t.kind], own)  # type: ignore[attr-defined]

    async def connect(
        self,
        *,
        can_publish: bool = True,
        join: bool = True,
        kinds: tuple[str, ...] = ("audio", "video"),
    ) -> float:
        """Join (the room carrying ``kinds``), offer, apply the answer. Returns the monotonic
        time the answer was applied."""
        if join:
            await self.engine.join(
                self.room_id, self.participant_id, can_publish=can_publish, kinds=kinds
            )
        offer = await self.pc.createOffer()
        apply_ice_policy(self.pc, LOOPBACK)
        await self.pc.setLocalDescription(offer)
        sdp = self.pc.localDescription.sdp
        if self.munge is not None:
            sdp = self.munge(sdp)
        if self.relay is not None:
            sdp = self.relay.rewrite_offer(sdp)
        answer = await self.engine.handle_offer(self.room_id, self.participant_id, sdp)
        if self.relay is not None:
            answer = self.relay.rewrite_answer(answer)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        self._hook_receivers()
        return time.monotonic()

    def on_signal(self, message: dict[str, Any]) -> None:
        if message.get("type") == "call_offer":
            task = asyncio.ensure_future(self._answer(message["data"]["sdp"]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        self._hook_receivers()
        answer = await self.pc.createAnswer()
        apply_ice_policy(self.pc, LOOPBACK)
        await self.pc.setLocalDescription(answer)
        await self.engine.handle_answer(
            self.room_id, self.participant_id, self.pc.localDescription.sdp
        )
        self.offers_answered += 1

    def filter_incoming(self, keep: Callable[[bytes], bool]) -> None:
        """Drop decrypted RTP packets for which ``keep`` is false (simulated loss)."""
        dtls = self.pc.getTransceivers()[0].receiver.transport
        original = dtls._handle_rtp_data

        async def handle(data: bytes, arrival_time_ms: int) -> None:
            if keep(data):
                await original(data, arrival_time_ms=arrival_time_ms)

        dtls._handle_rtp_data = handle  # type: ignore[method-assign]

    def record_rtcp_at_sender(self, kind: str) -> list[Any]:
        """Keep every RTCP packet routed to our sender of ``kind`` (e.g. PLIs from the SFU)."""
        log: list[Any] = []
        for t in self.pc.getTransceivers():
            if t.kind == kind and t.sender.track is not None:
                original = t.sender._handle_rtcp_packet

                async def handle(packet: Any, original: Any = original) -> None:
                    log.append((time.monotonic(), packet))
                    await original(packet)

                t.sender._handle_rtcp_packet = handle  # type: ignore[method-assign]
        return log

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.pc.close()


class Switchboard:
    """The ``send_signal`` callable given to the engine: delivers to test peers."""

    def __init__(self) -> None:
        self.peers: dict[tuple[str, str], Peer] = {}
        self.messages: list[tuple[str, str, dict[str, Any]]] = []

    async def __call__(self, room_id: str, participant_id: str, message: dict[str, Any]) -> None:
        self.messages.append((room_id, participant_id, message))
        peer = self.peers.get((room_id, participant_id))
        if peer is not None:
            peer.on_signal(message)

    def add(self, peer: Peer) -> Peer:
        self.peers[(peer.room_id, peer.participant_id)] = peer
        return peer


