"""The review file: one MP4 per consultation, composed offline from the live recordings.

Both voices mixed into one AAC track; both pictures side by side in one H.264 track (libx264
``veryfast``, 15 fps, ``faststart``), on the consultation clock: a party's picture stays in
its tile only while it sends (a placeholder tile otherwise: before a late join, camera off,
after leaving), silence fills a party's audio gaps. The output is written under a temporary
name and renamed when complete, and catalogued as a ``review`` recording — composing again is
a no-op (idempotent), and a run that dies leaves nothing a new run does not redo (resumable
per consultation).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from recording.store import RecordingStore
from recording.writer import FileResult, commit, sha256_of

logger = logging.getLogger(__name__)

FPS = 15
TILE = (320, 240)
RATE = 48000
STEP = RATE // FPS
"""Audio samples per video frame: the two advance in lockstep."""
STALE_S = 1.0
"""A party's last picture is shown this long; after that (camera off, left) the placeholder."""
PARTIES = ("caller", "astrologer")
REVIEW_NAME = "review.mp4"


@dataclass(frozen=True, slots=True)
class Inputs:
    """The files of one consultation, per party and kind, in segment order."""

    consultation_id: str
    duration_s: float
    """Length of the review file: the consultation's, on its clock."""
    files: dict[tuple[str, str], list[Path]]


def _video_frames(paths: list[Path]) -> Iterator[tuple[float, Any]]:
    """(seconds on the consultation clock, decoded frame), across segments."""
    for path in paths:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            base = stream.time_base or Fraction(1, 1000)
            try:
                for frame in container.decode(stream):
                    if frame.pts is not None:
                        yield float(frame.pts * base), frame
            except av.FFmpegError:
                logger.warning("review_input_damaged", extra={"path": path.name})


class _Tiles:
    """A party's picture at output time ``t``: its latest frame, or the placeholder."""

    def __init__(self, paths: list[Path], placeholder: Any) -> None:
        self._frames = _video_frames(paths)
        self._next: tuple[float, Any] | None = next(self._frames, None)
        self._current: tuple[float, Any] | None = None
        self._tile: Any = None
        self._placeholder = placeholder

    def at(self, t: float) -> Any:
        advanced = False
        while self._next is not None and self._next[0] <= t:
            self._current, advanced = self._next, True
            self._next = next(self._frames, None)
        if self._current is None or t - self._current[0] > STALE_S:
            return self._placeholder
        if advanced or self._tile is None:
            self._tile = self._current[1].reformat(width=TILE[0], height=TILE[1], format="yuv420p")
        return self._tile


class _Voice:
    """A party's audio as 16-bit mono PCM from t=0, silence in its gaps, ``STEP`` at a time."""

    def __init__(self, paths: list[Path]) -> None:
        self._chunks = self._pcm(paths)
        self._buffer = bytearray()
        self._cursor = 0
        """Samples produced so far (the buffer's end on the timeline)."""

    def _pcm(self, paths: list[Path]) -> Iterator[tuple[int, bytes]]:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        for path in paths:
            with av.open(str(path)) as container:
                stream = container.streams.audio[0]
                base = stream.time_base or Fraction(1, 1000)
                try:
                    for frame in container.decode(stream):
                        start = round(float((frame.pts or 0) * base) * RATE)
                        for out in resampler.resample(frame):
                            yield start, bytes(out.planes[0])[: out.samples * 2]
                            start += out.samples
                except av.FFmpegError:
                    logger.warning("review_input_damaged", extra={"path": path.name})

    def take(self) -> bytes:
        need = 2 * STEP
        while len(self._buffer) < need:
            chunk = next(self._chunks, None)
            if chunk is None:
                self._buffer += bytes(need - len(self._buffer))
                break
            start, pcm = chunk
            if start > self._cursor:  # a gap stays a gap: silence
                self._buffer += bytes(2 * (start - self._cursor))
                self._cursor = start
            elif start < self._cursor:  # overlap (a clamped timestamp): drop what is late
                pcm = pcm[2 * (self._cursor - start):]
            self._buffer += pcm
            self._cursor += len(pcm) // 2
        out = bytes(self._buffer[:need])
        del self._buffer[:need]
        return out


def _pcm_frame(pcm: bytes, pts: int) -> Any:
    frame = av.AudioFrame(format="s16", layout="mono", samples=len(pcm) // 2)
    frame.planes[0].update(pcm)
    frame.sample_rate = RATE
    frame.pts = pts
    frame.time_base = Fraction(1, RATE)
    return frame


def _graphs() -> tuple[tuple[Any, list[Any]], tuple[Any, list[Any]]]:
    """hstack of the two tiles; amix of the two voices (not normalised: each keeps its level).
    Each graph with its sources, one per party."""
    video = av.filter.Graph()
    tiles = [video.add_buffer(width=TILE[0], height=TILE[1], format=av.VideoFormat("yuv420p"),
                              time_base=Fraction(1, FPS)) for _ in PARTIES]
    stack = video.add("hstack", "inputs=2")
    vsink = video.add("buffersink")
    for i, tile in enumerate(tiles):
        tile.link_to(stack, 0, i)
    stack.link_to(vsink)
    video.configure()
    audio = av.filter.Graph()
    voices = [audio.add_abuffer(format="s16", sample_rate=RATE, layout="mono",
                                time_base=Fraction(1, RATE)) for _ in PARTIES]
    mix = audio.add("amix", "inputs=2:normalize=0")
    fmt = audio.add("aformat", "sample_fmts=fltp:channel_layouts=mono")
    asink = audio.add("abuffersink")
    for i, voice in enumerate(voices):
        voice.link_to(mix, 0, i)
    mix.link_to(fmt)
    fmt.link_to(asink)
    audio.configure()
    return (video, tiles), (audio, voices)


def _drain(graph: Any) -> Iterator[Any]:
    while True:
        try:
            yield graph.pull()
        except (BlockingIOError, av.EOFError):
            return
        except av.FFmpegError as exc:
            if getattr(exc, "errno", None) == 11:  # EAGAIN: needs more input
                return
            raise


def _placeholder() -> Any:
    frame = av.VideoFrame(TILE[0], TILE[1], "gray")
    frame.planes[0].update(bytes([48]) * frame.planes[0].buffer_size)
    return frame.reformat(format="yuv420p")


def compose(store: RecordingStore, inputs: Inputs) -> FileResult:
    """Write ``<consultation>/review.mp4``; returns it finalised (size, SHA-256)."""
    key = f"{inputs.consultation_id}/{REVIEW_NAME}"
    final = store.staging_path(key)
    tmp = final.with_name(final.name + ".part")
    frames = max(1, math.ceil(inputs.duration_s * FPS))
    placeholder = _placeholder()
    tiles = [_Tiles(inputs.files.get((p, "video"), []), placeholder) for p in PARTIES]
    voices = [_Voice(inputs.files.get((p, "audio"), [])) for p in PARTIES]
    (vgraph, vsrc), (agraph, asrc) = _graphs()
    started = time.monotonic()
    with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as out:
        v = out.add_stream("libx264", rate=FPS)
        v.width, v.height, v.pix_fmt = TILE[0] * len(PARTIES), TILE[1], "yuv420p"
        v.options = {"preset": "veryfast", "crf": "26", "g": str(FPS * 10)}
        a = out.add_stream("aac", rate=RATE, layout="mono")
        for i in range(frames):
            t = i / FPS
            for src, tile in zip(vsrc, tiles, strict=True):
                frame = tile.at(t)
                frame.pts, frame.time_base = i, Fraction(1, FPS)
                src.push(frame)
            for composed in _drain(vgraph):
                out.mux(v.encode(composed))
            for src, voice in zip(asrc, voices, strict=True):
                src.push(_pcm_frame(voice.take(), i * STEP))
            for mixed in _drain(agraph):
                out.mux(a.encode(mixed))
            if i and i % (FPS * 60) == 0:
                logger.info("review_progress", extra={
                    "consultation": inputs.consultation_id, "done_s": round(t),
                    "of_s": round(inputs.duration_s),
                    "cpu_s": round(time.process_time(), 1),
                    "elapsed_s": round(time.monotonic() - started, 1)})
        for stream in (v, a):
            for packet in stream.encode(None):
                out.mux(packet)
    os.replace(tmp, final)
    return commit(store, FileResult(key, "complete", round(frames / FPS * 1000), 0,
                                    final.stat().st_size, sha256_of(final)))
