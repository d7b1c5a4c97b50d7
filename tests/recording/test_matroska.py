"""The Python Matroska writer read back by FFmpeg (PyAV): frames byte for byte at their
millisecond, key-frame flags, Duration and Cues after a clean finish, and a file cut after
any hand-over still readable up to the cut."""

from __future__ import annotations

import os
from pathlib import Path

import av
import pytest

from recording.depacketize import annexb_to_avcc, h264_dimensions, h264_parameter_sets
from recording.matroska import ClusterBuffer, file_header
from tests.media.conftest import H264, VP8_OPUS_20S

OFFSET_MS = 3309
"""Files start where their track started on the consultation clock, not at 0."""


def _frames(path: str, kind: str) -> list[tuple[int, bytes, bool]]:
    out: list[tuple[int, bytes, bool]] = []
    with av.open(path) as container:
        stream = container.streams.video[0] if kind == "video" else container.streams.audio[0]
        for p in container.demux(stream):
            if p.size and p.pts is not None and p.time_base is not None:
                ms = max(OFFSET_MS + int(p.pts * p.time_base * 1000), out[-1][0] + 1 if out else 0)
                out.append((ms, bytes(p), bool(p.is_keyframe)))
    return out


def _record(path: Path, codec: str, frames: list[tuple[int, bytes, bool]],
            finish: bool = True) -> list[int]:
    """Write ``frames`` as the recorder does (a hand-over every 13 frames); the file sizes
    after each hand-over."""
    width, height, extradata = 320, 240, None
    if codec == "h264":
        extradata = h264_parameter_sets(frames[0][1])
        width, height = h264_dimensions(frames[0][1]) or (0, 0)
    buffer = ClusterBuffer(codec, file_header(codec, width, height, extradata))
    sizes = []
    with path.open("wb") as f:
        for i, (ms, data, key) in enumerate(frames):
            buffer.write(data, ms, key)
            if i % 13 == 12:
                f.write(buffer.take())
                sizes.append(f.tell())
        if finish:
            end = buffer.finish()
            assert end is not None
            f.write(end.tail)
            for offset, data in end.patches:
                f.seek(offset)
                f.write(data)
    return sizes


def _read(path: Path) -> tuple[list[tuple[int, bytes, bool]], int, int | None]:
    with av.open(str(path)) as container:
        stream = container.streams[0]
        packets = [(int(p.pts), bytes(p), bool(p.is_keyframe))
                   for p in container.demux(stream) if p.size and p.pts is not None]
        decoded = 0
        with av.open(str(path)) as again:
            decoded = sum(1 for _ in again.decode(again.streams[0]))
        return packets, decoded, container.duration


@pytest.mark.parametrize(("kind", "codec", "ext"), [("video", "vp8", "webm"),
                                                    ("audio", "opus", "mka")])
def test_frames_read_back_byte_for_byte_with_duration_and_cues(
    tmp_path: Path, kind: str, codec: str, ext: str
) -> None:
    frames = _frames(VP8_OPUS_20S, kind)
    path = tmp_path / f"t.{ext}"
    _record(path, codec, frames)
    packets, decoded, duration = _read(path)
    assert packets == frames
    assert decoded == len(frames)
    assert duration is not None and abs(duration / 1000 - (frames[-1][0] + 20)) <= 40
    with av.open(str(path)) as container:  # the Cues: a seek lands on a key frame before it
        stream = container.streams[0]
        container.seek(OFFSET_MS + 10_000, stream=stream, backward=True)
        first = next(p for p in container.demux(stream) if p.size)
        assert first.is_keyframe and OFFSET_MS + 7_000 <= (first.pts or 0) <= OFFSET_MS + 10_000


def test_h264_is_stored_length_prefixed_with_its_parameter_sets(tmp_path: Path) -> None:
    frames = _frames(H264, "video")
    path = tmp_path / "t.mkv"
    _record(path, "h264", frames)
    packets, decoded, _ = _read(path)
    assert [data for _, data, _ in packets] == [annexb_to_avcc(data) for _, data, _ in frames]
    assert decoded == len(frames)


def test_a_file_cut_after_a_hand_over_reads_up_to_the_cut(tmp_path: Path) -> None:
    frames = _frames(VP8_OPUS_20S, "video")
    path = tmp_path / "cut.webm"
    sizes = _record(path, "vp8", frames, finish=False)
    cut = sizes[len(sizes) // 2]
    os.truncate(path, cut)
    packets, decoded, _ = _read(path)
    assert packets == frames[: len(packets)] and len(packets) == 13 * (len(sizes) // 2 + 1)
    assert decoded == len(packets)
