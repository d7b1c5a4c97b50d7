"""An aiortc client driven over a real signalling socket, as the web client drives the browser's
peer connection: it offers to the SFU, answers the SFU's renegotiation offers, and records what
it receives per kind and per receiver."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription

from media.ice import apply_ice_policy
from tests.media.peers import LOOPBACK, Frame, RecordingQueue, RecordingTrack
from tests.recording.sources import PacedClock, PacedSource, load_packets
from tests.signalling.wsclient import WsClient

CLIP = str(Path(__file__).resolve().parents[1] / "media" / "data" / "vp8_opus_320x240_20s.webm")
PUBLISH_S = 300


class _TeeQueue(RecordingQueue):
    """Records a receiver's encoded frames per kind and per receiver."""

    def __init__(self, sink: list[Frame], own: list[Frame]) -> None:
        super().__init__(sink)
        self.own = own

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        before = len(self.sink)
        super().put(item, block, timeout)
        self.own.extend(self.sink[before:])


class WsPeer:
    """An aiortc client driven over the real socket: offers to the SFU, answers its offers."""

    def __init__(self, client: WsClient, cid: str) -> None:
        self.client = client
        self.cid = cid
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.received: dict[str, list[Frame]] = {"audio": [], "video": []}
        self.by_receiver: dict[int, list[Frame]] = {}
        self.frames: list[dict[str, Any]] = []
        self._hooked: set[int] = set()
        self._pump: asyncio.Task[None] | None = None
        self.sources: list[PacedSource] = []
        self.offers_answered = 0

    def publish(self) -> None:
        """The clip repeated to PUBLISH_S and paced in real time: media that outlasts the test
        however long a busy machine makes it (the 20 s clip alone ran out mid-test)."""
        clock = PacedClock()
        for kind in ("video", "audio"):
            source = PacedSource(kind, load_packets(CLIP, kind, repeat_to_s=PUBLISH_S), clock)
            self.sources.append(source)
            t = self.pc.addTransceiver(RecordingTrack(source), direction="sendrecv")
            if source.kind == "video":
                caps = RTCRtpSender.getCapabilities("video").codecs
                t.setCodecPreferences([c for c in caps if c.mimeType == "video/VP8"][:1])

    def receive(self, *kinds: str) -> None:
        for kind in kinds:
            self.pc.addTransceiver(kind, direction="recvonly")

    def _hook(self) -> None:
        for t in self.pc.getTransceivers():
            if id(t.receiver) not in self._hooked:
                self._hooked.add(id(t.receiver))
                mine = self.by_receiver[id(t.receiver)] = []
                t.receiver._RTCRtpReceiver__decoder_queue = (  # type: ignore[attr-defined]
                    _TeeQueue(self.received[t.kind], mine)
                )

    async def connect(self) -> None:
        offer = await self.pc.createOffer()
        apply_ice_policy(self.pc, LOOPBACK)
        await self.pc.setLocalDescription(offer)
        await self.client.ok("call_offer", {"consultation_id": self.cid,
                                            "sdp": self.pc.localDescription.sdp})
        answer = await self.client.event("call_answer", wait_s=30, **{"from": "sfu"})
        await self.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        self._hook()
        self._pump = asyncio.create_task(self._serve())

    async def _serve(self) -> None:
        """The only reader of the socket from now on: answers server offers, keeps the rest."""
        while True:
            try:
                frame = await self.client._read(30)
            except (TimeoutError, ConnectionError):
                return
            if frame["type"] != "call_offer":
                self.frames.append(frame)
                continue
            offer = frame["data"]
            await self.pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
            self._hook()
            answer = await self.pc.createAnswer()
            apply_ice_policy(self.pc, LOOPBACK)
            await self.pc.setLocalDescription(answer)
            await self.client.send("call_answer", {"consultation_id": self.cid,
                                                   "sdp": self.pc.localDescription.sdp})
            self.offers_answered += 1

    def got(self, kind: str, **match: Any) -> bool:
        return any(f["type"] == kind and all(f["data"].get(k) == v for k, v in match.items())
                   for f in self.frames)

    async def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            await asyncio.gather(self._pump, return_exceptions=True)
        await self.pc.close()
        for source in self.sources:
            source.stop()


async def start_consult(
    caller: WsClient, astro: WsClient, astro_id: str, mode: str = "video"
) -> str:
    """Request, accept and join a consultation (each socket on its own node); its id."""
    ack = await caller.ok("consult_request", {"consultant_id": astro_id, "mode": mode})
    cid: str = ack["consultation"]["id"]
    await astro.event("consult_request")
    await astro.ok("accept", {"consultation_id": cid})
    await caller.ok("join_consult", {"consultation_id": cid})
    await astro.ok("join_consult", {"consultation_id": cid})
    return cid
