"""Publishing paced sources from test peers and reading recordings back."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
from aiortc import RTCRtpSender

from media.engine import MediaEngine
from tests.media.peers import Frame, Peer
from tests.recording.sources import PacedClock, PacedSource


def publish(peer: Peer, *sources: PacedSource, video_mime: str = "video/VP8") -> None:
    for source in sources:
        t = peer.pc.addTransceiver(source, direction="sendrecv")
        if source.kind == "video":
            caps = RTCRtpSender.getCapabilities("video").codecs
            t.setCodecPreferences(
                [c for c in caps if c.mimeType.lower() == video_mime.lower()][:1]
                + [c for c in caps if c.name.lower() == "rtx"][:1]
            )


async def crossed_the_sfu(engine: MediaEngine, room_id: str, peers: Iterable[Peer]) -> bool:
    """Whether every RTP packet the peers have sent so far has reached the SFU's published
    tracks (lost ones recovered by RTX count too). The recorder's tap runs in the same call
    as the SFU's receive, so what the SFU has, the recorder has."""
    room = engine._rooms.get(room_id)
    if room is None:
        return False
    for peer in peers:
        participant = room.participants.get(peer.participant_id)
        if participant is None:
            return False
        sent = 0
        for sender in peer.pc.getSenders():
            stats = await sender.getStats()
            sent += sum(getattr(s, "packetsSent", 0) for s in stats.values()
                        if s.type == "outbound-rtp")
        received = sum(up.rate.packets + up.rtx_received
                       for up in participant.uptracks.values())
        if received < sent:
            return False
    return True


@dataclass
class Party:
    peer: Peer
    clock: PacedClock
    sources: dict[str, PacedSource]

    def done(self) -> bool:
        return all(s.readyState == "ended" for s in self.sources.values())


@dataclass
class Stored:
    """One recorded file read back."""

    codec: str
    packets: list[tuple[int, bytes]]
    """(pts ms, bytes) in file order."""
    decoded: int
    """Frames the decoder produced."""

    def frames(self) -> list[Frame]:
        return [Frame(0.0, data, ms) for ms, data in self.packets]

    @property
    def first_ms(self) -> int:
        return self.packets[0][0]

    @property
    def span_ms(self) -> int:
        return self.packets[-1][0] - self.packets[0][0]


def read_back(path: Path, decode: bool = True) -> Stored:
    with av.open(str(path)) as container:
        stream: Any = container.streams[0]
        base = stream.time_base
        packets = []
        decoded = 0
        for p in container.demux(stream):
            if p.pts is None or not p.size:
                continue
            packets.append((round(p.pts * base * 1000), bytes(p)))
            if decode:
                decoded += len(stream.codec_context.decode(p))
        return Stored(stream.codec_context.name, packets, decoded)
