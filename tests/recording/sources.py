"""Paced pre-encoded sources for recorder tests, and a generated flash-and-beep clip.

aiortc's ``MediaPlayer`` runs up to a second ahead of real time and in bursts, which is
not what a camera and a microphone do; ``PacedSource`` releases each encoded packet at its
presentation time (shared by a publisher's tracks), can leave out time windows (mute,
camera off) and remembers every packet sent.
"""

from __future__ import annotations

import asyncio
import fractions
import math
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
from aiortc import MediaStreamTrack

from tests.media.peers import Frame


@dataclass
class PacedClock:
    """The instant a publisher's media time 0 is sent (set by the first track to start)."""

    t0: float | None = None
    wall0: float | None = None

    def start(self) -> float:
        if self.t0 is None:
            self.t0 = time.monotonic()
            self.wall0 = time.time()
        return self.t0


def load_packets(path: str, kind: str, *, repeat_to_s: float = 0.0) -> list[av.Packet]:
    """A stream's packets (pts in seconds as ``Fraction``s), repeated to ``repeat_to_s``."""
    with av.open(path) as container:
        stream: Any = container.streams.video[0] if kind == "video" else container.streams.audio[0]
        base = stream.time_base
        first: list[tuple[float, bytes, bool]] = []
        for p in container.demux(stream):
            if p.size and p.pts is not None:
                first.append((float(p.pts * base), bytes(p), p.is_keyframe))
    first = sorted(f for f in first if f[0] >= 0)  # Opus pre-skip: media time stays shared
    start = 0.0
    span = first[-1][0] + (first[-1][0] - first[-2][0])
    out: list[av.Packet] = []
    loops = max(1, math.ceil(repeat_to_s / span)) if repeat_to_s else 1
    tb = fractions.Fraction(1, 90000) if kind == "video" else fractions.Fraction(1, 48000)
    for k in range(loops):
        for pts, data, key in first:
            t = pts - start + k * span
            if repeat_to_s and t >= repeat_to_s:
                break
            packet = av.Packet(data)
            packet.pts = round(t / tb)
            packet.time_base = tb
            packet.is_keyframe = key
            out.append(packet)
    return out


class PacedSource(MediaStreamTrack):
    """Sends ``packets`` at their presentation time, except those inside ``skip`` windows."""

    def __init__(
        self, kind: str, packets: list[av.Packet], clock: PacedClock,
        skip: tuple[tuple[float, float], ...] = (),
    ) -> None:
        super().__init__()
        self.kind = kind
        self._packets = packets
        self._clock = clock
        self._skip = skip
        self._i = 0
        self.sent: list[Frame] = []
        """Every packet sent: monotonic send time, bytes, media time in ms."""

    async def recv(self) -> Any:
        t0 = self._clock.start()
        while self._i < len(self._packets):
            packet = self._packets[self._i]
            self._i += 1
            t = float((packet.pts or 0) * (packet.time_base or 1))
            if any(a <= t < b for a, b in self._skip):
                continue
            delay = t0 + t - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self.sent.append(Frame(time.monotonic(), bytes(packet), round(t * 1000)))
            return packet
        self.stop()
        raise asyncio.CancelledError  # aiortc's sender loop ends on a stopped track


@dataclass
class FlashClip:
    """A generated VP8 + Opus clip: 100 ms of white and of a 1 kHz beep at each of ``at_s``."""

    path: Path
    at_s: tuple[float, ...]
    duration_s: float
    fps: int = 30
    extra: dict[str, Any] = field(default_factory=dict)


def make_flash_clip(path: Path, at_s: tuple[float, ...], duration_s: float) -> FlashClip:
    """Encode the clip once (libvpx, libopus): 160x120 grey video, silence between beeps."""
    fps = 30
    with av.open(str(path), "w", format="webm") as out:
        v = out.add_stream("libvpx", rate=fps)
        v.width, v.height, v.pix_fmt = 160, 120, "yuv420p"
        v.options = {"deadline": "realtime", "cpu-used": "8", "g": "30"}
        a = out.add_stream("libopus", rate=48000, layout="mono")
        for i in range(round(duration_s * fps)):
            flash = any(f - 0.5 / fps <= i / fps < f + 0.1 for f in at_s)  # as long as the beep
            frame = av.VideoFrame(160, 120, "gray")
            frame.planes[0].update(bytes([235 if flash else 40]) * frame.planes[0].buffer_size)
            frame = frame.reformat(format="yuv420p")
            frame.pts = i
            frame.time_base = fractions.Fraction(1, fps)
            for p in v.encode(frame):
                out.mux(p)
        n = 960
        for i in range(round(duration_s * 48000 / n)):
            samples = array("h", bytes(2 * n))
            for k in range(n):
                t = (i * n + k) / 48000
                if any(f <= t < f + 0.1 for f in at_s):
                    samples[k] = int(16000 * math.sin(2 * math.pi * 1000 * t))
            sound = av.AudioFrame(format="s16", layout="mono", samples=n)
            sound.planes[0].update(samples.tobytes())
            sound.sample_rate = 48000
            sound.pts = i * n
            sound.time_base = fractions.Fraction(1, 48000)
            for p in a.encode(sound):
                out.mux(p)
        for stream in (v, a):
            for p in stream.encode(None):
                out.mux(p)
    return FlashClip(path, at_s, duration_s, fps)
