"""A track recorder's packet handling, packet by packet: the audio reorder window, loss,
video frames assembled from reordered packets, key-frame gating with PLIs, bounded memory."""

from __future__ import annotations

import itertools
import time

from media.packets import vp8_is_keyframe
from recording.clock import NTP_UNIX_OFFSET, SenderClock
from recording.track import MAX_PENDING_FRAMES, FrameWrite, TrackRecorder


class Owner:
    """Collects what a track recorder writes (stands in for the consultation's recording)."""

    segment_ms = 600_000

    def __init__(self) -> None:
        self.origin = time.time()
        self.writes: list[tuple[bytes, int, bool]] = []
        self.notes: list[dict[str, object]] = []
        self.closed: list[str] = []
        self.wakes = 0

    def open_file(self, track: TrackRecorder, first_ms: int, width: int, height: int,
                  extradata: bytes | None) -> tuple[str, FrameWrite]:
        return "00000000-0000-0000-0000-000000000000/f.webm", self.write

    def write(self, data: bytes, ms: int, keyframe: bool) -> None:
        self.writes.append((data, ms, keyframe))

    def close_file(self, key: str) -> None:
        self.closed.append(key)

    def note(self, event: dict[str, object]) -> None:
        self.notes.append(event)

    def wake(self) -> None:
        self.wakes += 1


def _track(kind: str, plis: list[int]) -> tuple[Owner, TrackRecorder]:
    owner = Owner()
    track = TrackRecorder(
        owner, party="caller", kind=kind, codec="opus" if kind == "audio" else "vp8",
        clock_rate=48000 if kind == "audio" else 90000, sender=SenderClock(),
        request_keyframe=lambda: plis.append(1), is_keyframe=vp8_is_keyframe,
    )
    return owner, track


def _feed(track: TrackRecorder, seq: int, ts: int, b1: int, payload: bytes,
          arrival_ms: int) -> None:
    """One packet through the tap, then the batch it is in (one packet: each step is seen)."""
    track.on_rtp((seq, ts, b1, payload, arrival_ms / 1000))
    track.drain()


def _vp8(key: bool, start: bool, body: bytes) -> bytes:
    """Payload descriptor (S bit) + a VP8 frame header byte (P bit 0 = key frame)."""
    header = bytes([0x10 if start else 0x00])
    if not start:
        return header + body
    frame = bytes([0x00 if key else 0x01]) + b"\x00\x00\x9d\x01\x2a\x40\x01\xf0\x00"
    return header + (frame if key else frame[:1]) + body


def test_audio_reordered_in_window_and_loss_skipped() -> None:
    owner, track = _track("audio", [])
    now = time.monotonic_ns() // 1_000_000
    for seq in (10, 12, 11, 13):  # 11 late but within the window
        _feed(track, seq, seq * 960, 111, bytes([seq]), now + seq * 20)
    for seq in range(15, 22):  # 14 lost: given up once the window is full
        _feed(track, seq, seq * 960, 111, bytes([seq]), now + seq * 20)
    _feed(track, 14, 14 * 960, 111, bytes([14]), now + 500)  # too late: dropped
    track.close()
    assert [w[0][0] for w in owner.writes] == [10, 11, 12, 13, *range(15, 22)]
    ms = [w[1] for w in owner.writes]
    assert all(b > a for a, b in itertools.pairwise(ms))
    assert ms[4] - ms[3] == 40  # the lost packet's 20 ms stay a gap


def test_video_waits_for_key_frame_assembles_reordered_frames_and_recovers_from_loss() -> None:
    plis: list[int] = []
    owner, track = _track("video", plis)
    assert plis == [1]  # asked for a key frame at the start
    now = time.monotonic_ns() // 1_000_000
    track.on_sender_report(int((time.time() + NTP_UNIX_OFFSET) * 2**32), 0)
    _feed(track, 1, 3000, 96 | 0x80, _vp8(False, True, b"d"), now)  # delta first: dropped
    # key frame in three packets, arriving out of order
    _feed(track, 4, 6000, 96 | 0x80, _vp8(True, False, b"c"), now + 40)
    _feed(track, 2, 6000, 96, _vp8(True, True, b"a"), now + 41)
    _feed(track, 3, 6000, 96, _vp8(True, False, b"b"), now + 42)
    _feed(track, 5, 9000, 96 | 0x80, _vp8(False, True, b"e"), now + 70)
    assert [w[2] for w in owner.writes] == [True, False]
    assert owner.writes[0][0].endswith(b"abc")
    # packet 6 of the next frame is lost: later frames complete, the gap is given up
    for i in range(8):
        seq = 7 + i
        _feed(track, seq, 12000 + 3000 * i, 96 | 0x80, _vp8(False, True, b"x"), now + 100 + i)
    assert len(owner.writes) == 2 and len(plis) == 2  # dropped until a key frame; PLI sent
    _feed(track, 20, 40000, 96 | 0x80, _vp8(True, True, b"k"), now + 300)
    assert owner.writes[-1][2] is True
    track.close()
    assert owner.closed


def test_video_without_markers_stays_bounded() -> None:
    owner, track = _track("video", [])
    now = time.monotonic_ns() // 1_000_000
    for i in range(MAX_PENDING_FRAMES * 3):
        _feed(track, i, 3000 * i, 96, _vp8(False, True, b"z"), now + i)
    assert len(track._frames) <= MAX_PENDING_FRAMES + 1
    assert owner.writes == []


def test_the_tap_queues_and_wakes_the_owner_once_per_batch() -> None:
    """On the forwarding path a packet is only queued; the first of a batch asks for a drain,
    which writes them in arrival order."""
    owner, track = _track("audio", [])
    track.on_sender_report(int((time.time() + NTP_UNIX_OFFSET) * 2**32), 0)
    now = time.monotonic()
    for seq in range(5):
        track.on_rtp((seq, seq * 960, 111, bytes([seq + 1]), now + seq * 0.02))
    assert owner.writes == [] and owner.wakes == 1
    track.drain()
    assert [data for data, _, _ in owner.writes] == [bytes([i + 1]) for i in range(5)]
    track.on_rtp((5, 5 * 960, 111, b"\x06", now + 0.1))
    assert owner.wakes == 2
    track.close()  # what is queued is written before the file closes
    assert owner.writes[-1][0] == b"\x06" and owner.closed
