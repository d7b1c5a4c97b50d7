"""Generate the pre-encoded clips used by tests/media and bench/sfu.py.

The clips are synthetic (moving gradient + white box, 440 Hz tone) so they need no
external assets. Keyframe interval is short on purpose: pre-encoded media cannot honour a
PLI (RFC 4585 §6.3.1), so a late subscriber waits for the next keyframe in the file.

    python -m bench.sfu_media vp8 tests/media/data/vp8_opus_320x240.webm
    python -m bench.sfu_media h264 tests/media/data/h264_320x240.ts
    python -m bench.sfu_media vp8-640 /tmp/sfu_640x480.webm 30
"""

from __future__ import annotations

import array
import fractions
import math
import sys
from collections.abc import Iterator
from typing import Any

import av


def _video_frames(width: int, height: int, count: int, fps: int) -> Iterator[av.VideoFrame]:
    for i in range(count):
        frame = av.VideoFrame(width, height, "yuv420p")
        luma = bytearray((x * 2 + 6 * i) % 256 for x in range(width)) * height
        x0 = (i * 5) % (width - 40)
        for row in range(height // 3, height // 3 + 40):
            luma[row * width + x0 : row * width + x0 + 40] = b"\xff" * 40
        frame.planes[0].update(bytes(luma))
        chroma = (width // 2) * (height // 2)
        frame.planes[1].update(bytes([(i * 7) % 256]) * chroma)
        frame.planes[2].update(bytes([(128 + i * 3) % 256]) * chroma)
        frame.pts = i
        frame.time_base = fractions.Fraction(1, fps)
        yield frame


def make_clip(
    path: str,
    *,
    container: str,
    codec: str,
    width: int,
    height: int,
    seconds: float,
    fps: int = 30,
    gop: int = 15,
    bitrate: int = 300_000,
    audio: bool = True,
) -> None:
    """Encode a synthetic clip (video + optional Opus audio) into ``path``."""
    options = (
        {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0", "auto-alt-ref": "0"}
        if codec == "libvpx"
        else {
            "profile": "baseline",
            "tune": "zerolatency",
            "preset": "veryfast",
            "bf": "0",
            "x264-params": "repeat-headers=1",
        }
    )
    out = av.open(path, mode="w", format=container)
    vstream: Any = out.add_stream(codec, rate=fps)
    vstream.width, vstream.height, vstream.pix_fmt = width, height, "yuv420p"
    vstream.bit_rate = bitrate
    vstream.gop_size = gop
    vstream.options = options
    astream: Any = None
    if audio:
        astream = out.add_stream("libopus", rate=48000)
        astream.bit_rate = 32000
        astream.layout = "mono"
    total = int(seconds * 48000)
    pcm = array.array(
        "h", (int(math.sin(2 * math.pi * 440 * k / 48000) * 8000) for k in range(total))
    )
    audio_off = 0
    # interleave: a demuxer reading ahead at most 1 s must meet both streams
    for frame in _video_frames(width, height, int(seconds * fps), fps):
        for packet in vstream.encode(frame):
            out.mux(packet)
        audio_due = min(total, ((frame.pts or 0) + 1) * 48000 // fps)
        while astream is not None and audio_off + 960 <= audio_due:
            aframe = av.AudioFrame(format="s16", layout="mono", samples=960)
            aframe.planes[0].update(pcm[audio_off : audio_off + 960].tobytes())
            aframe.sample_rate = 48000
            aframe.pts = audio_off
            aframe.time_base = fractions.Fraction(1, 48000)
            for packet in astream.encode(aframe):
                out.mux(packet)
            audio_off += 960
    for packet in vstream.encode():
        out.mux(packet)
    if astream is not None:
        for packet in astream.encode():
            out.mux(packet)
    out.close()


def main(argv: list[str]) -> None:
    kind, path = argv[0], argv[1]
    seconds = float(argv[2]) if len(argv) > 2 else 3.5
    if kind == "vp8":
        make_clip(path, container="webm", codec="libvpx", width=320, height=240, seconds=seconds)
    elif kind == "vp8-long":
        make_clip(
            path,
            container="webm",
            codec="libvpx",
            width=320,
            height=240,
            seconds=seconds,
            bitrate=150_000,
        )
    elif kind == "h264":
        make_clip(
            path,
            container="mpegts",
            codec="libx264",
            width=320,
            height=240,
            seconds=seconds,
            audio=False,
        )
    elif kind == "vp8-640":
        make_clip(
            path,
            container="webm",
            codec="libvpx",
            width=640,
            height=480,
            seconds=seconds,
            gop=60,
            bitrate=1_000_000,
        )
    else:
        raise SystemExit(f"unknown clip kind {kind!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
