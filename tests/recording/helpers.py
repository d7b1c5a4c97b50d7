"""Publishing paced sources from test peers and reading recordings back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
from aiortc import RTCRtpSender

from recording.recorder import Recorder
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


@dataclass
class Party:
    peer: Peer
    clock: PacedClock
    sources: dict[str, PacedSource]

    def done(self) -> bool:
        return all(s.readyState == "ended" for s in self.sources.values())


def written_all(recorder: Recorder, room_id: str, parties: dict[str, Party]) -> bool:
    """Whether the recorder has written as many frames of every party's track as its source
    sent: the last packets have crossed the SFU (polled instead of a fixed wait)."""
    room = recorder.rooms.get(room_id)
    if room is None:
        return False
    written = {(t.party, t.kind): t.frames_written for t in room.tracks}
    return all(
        written.get((name, kind), 0) >= len(source.sent)
        for name, party in parties.items()
        for kind, source in party.sources.items()
    )


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
