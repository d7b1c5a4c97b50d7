"""One published track's recorder: packets in (from the SFU, decrypted), frames out.

The SFU's tap only queues each packet (one list append on the forwarding path); the packets
are worked through in a batch per track when the writer next hands files over (``drain``,
every ``recording.writer.FLUSH_S``). Measured on the SFU, the same work done packet by packet
between the forwarding of other packets cost about 1.5 times what it costs in a batch, whose code
and objects stay in the CPU's caches (docs/BENCHMARKS.md, recording).

It runs on the event loop, so it does little per packet: audio goes through a small reorder
window by sequence number (aiortc's audio jitter buffer is not used: at 1 % loss it drops
good packets around each lost one); video packets are grouped into frames by RTP timestamp
and a frame is written once it is complete (marker bit, no sequence gap). Video starts on a
key frame and, after a lost frame, waits for the next one, asking for it with a PLI (RFC 4585
§6.3.1) — as it does at the start and before each new segment. Frames are handed to the
consultation's recording with their time on the consultation clock (``recording.clock``);
gaps (mute, camera off, DTX, loss) stay gaps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from recording.clock import SenderClock, TrackClock, ntp_to_unix
from recording.depacketize import (
    frame_data_for,
    h264_dimensions,
    h264_parameter_sets,
    vp8_dimensions,
)

AUDIO_REORDER_PACKETS = 5
"""Packets held back waiting for a missing one (100 ms of 20 ms Opus frames)."""
VIDEO_LATER_FRAMES = 6
"""An incomplete video frame is given up once this many later frames are complete (about
200 ms at 30 fps: time for the SFU's upstream NACK to bring the packet back)."""
FIRST_REPORT_WAIT_S = 3.0
"""Frames are held back (in memory) until the track's first sender report, for at most
this long: the arrival anchor alone put audio and video of one start up to ~50 ms apart."""
MAX_PENDING_FRAMES = 64
"""Video frames waiting for packets; beyond this the oldest is given up (bounded memory when
marker bits never come)."""
GAP_EVENT_MS = 1000
"""A jump in a track's media time beyond this is noted in the manifest (mute, camera off)."""


FrameWrite = Callable[[bytes, int, bool], None]
TappedPacket = tuple[int, int, int, bytes, float]
"""A packet as the SFU taps it (``media.observer.ForwardedPacket``): sequence number, RTP
timestamp, marker/payload-type byte, payload, arrival (``time.monotonic()`` seconds)."""


def _no_file(data: bytes, ms: int, keyframe: bool) -> None:
    raise AssertionError("a frame written with no file open")


class TrackOwner(Protocol):
    """The consultation's recording, as a track recorder sees it."""

    segment_ms: int
    origin: float
    """Unix seconds at 0 ms on the consultation clock."""

    def open_file(
        self, track: TrackRecorder, first_ms: int, width: int, height: int, extradata: bytes | None
    ) -> tuple[str, FrameWrite]:
        """Start a new file for ``track`` (its next segment): its storage key, and where its
        frames go (``(data, ms, keyframe)``)."""

    def close_file(self, key: str) -> None: ...

    def wake(self) -> None:
        """Packets are queued: ``drain`` this track at the next hand-over."""

    def note(self, event: dict[str, object]) -> None:
        """Add an event (join, leave, gap) to the manifest."""


def _after(a: int, b: int) -> bool:
    """RFC 1982 serial comparison of 16-bit sequence numbers: ``a`` comes after ``b``."""
    return a != b and ((a - b) & 0xFFFF) < 0x8000


@dataclass(slots=True)
class _Frame:
    packets: dict[int, bytes] = field(default_factory=dict)
    marker: int | None = None
    arrival: float = 0.0


class TrackRecorder:
    """Implements the SFU's packet tap (``media.forwarder.PacketTap``) for one track."""

    def __init__(
        self,
        owner: TrackOwner,
        *,
        party: str,
        kind: str,
        codec: str,
        clock_rate: int,
        sender: SenderClock,
        request_keyframe: Callable[[], None],
        is_keyframe: Callable[[bytes], bool],
    ) -> None:
        self.owner = owner
        self.party = party
        self.kind = kind
        self.codec = codec
        self.sender = sender
        self.clock = TrackClock(clock_rate, sender)
        self._request_keyframe = request_keyframe
        self._is_keyframe = is_keyframe
        """The SFU's detector: true for the packet that starts a key frame."""
        self._data = frame_data_for(codec)
        self._mono_to_wall = time.time() - time.monotonic()
        self._origin = owner.origin
        self._file_write: FrameWrite = _no_file
        self.closed = False
        self._queue: list[TappedPacket] = []
        """Packets tapped since the last ``drain``."""
        self.key: str | None = None
        self.frames_written = 0
        self._segment_start = 0
        self._last_ms = -1
        self._rotate_asked = False
        # audio
        self._expected: int | None = None
        self._held: dict[int, tuple[int, bytes, float]] = {}
        # video
        self._frames: dict[int, _Frame] = {}
        self._next_seq: int | None = None
        self._need_key = True
        self._early: list[tuple[int, bytes, float, bool]] = []
        """Frames before the first sender report (see ``FIRST_REPORT_WAIT_S``)."""
        if kind == "video":
            request_keyframe()

    # -- the tap ----------------------------------------------------------------------

    def on_rtp(self, packet: TappedPacket) -> None:
        queue = self._queue
        if not queue:
            if self.closed:  # a closed track's queue stays empty
                return
            self.owner.wake()
        queue.append(packet)

    def drain(self) -> None:
        """Work through the queued packets, in arrival order."""
        queue, self._queue = self._queue, []
        to_wall = self._mono_to_wall
        if self.kind == "audio":  # one call per packet less than through _packet
            audio = self._audio
            for seq, ts, _, payload, arrival in queue:
                audio(seq, ts, payload, arrival + to_wall)
        else:
            video = self._video
            for seq, ts, b1, payload, arrival in queue:
                video(seq, ts, b1 & 0x80, payload, arrival + to_wall)

    def on_sender_report(self, ntp: int, rtp_ts: int) -> None:
        """An RTCP SR of this track (RFC 3550 §6.4.1), as it arrives (after the packets that
        arrived before it)."""
        self.drain()
        sender_unix = ntp_to_unix(ntp)
        self.sender.on_report(sender_unix, time.time())
        self.clock.on_report(rtp_ts, sender_unix)
        if self._early and self.clock.synchronised:
            self._release_early()

    def close(self) -> None:
        """The track ended: write what is complete and close the file."""
        if self.closed:
            return
        self.drain()
        for seq in sorted(self._held, key=lambda s: (s - (self._expected or 0)) & 0xFFFF):
            self._write(*self._held[seq], True)
        self._held.clear()
        self._drain_video(final=True)
        self._release_early()
        self.closed = True
        if self.key is not None:
            self.owner.close_file(self.key)
            self.key = None

    # -- audio ------------------------------------------------------------------------

    def _audio(self, seq: int, ts: int, payload: bytes, arrival: float) -> None:
        if seq == self._expected and not self._held:  # in order, nothing waiting: most packets
            self._expected = (seq + 1) & 0xFFFF
            self._write(ts, payload, arrival, True)
            return
        if self._expected is None:
            self._expected = seq
        elif seq != self._expected and not _after(seq, self._expected):
            return  # late (its slot was given up) or duplicate
        self._held[seq] = (ts, payload, arrival)
        self._release_audio()
        if len(self._held) > AUDIO_REORDER_PACKETS:  # give up on the missing packet(s)
            self._expected = min(self._held, key=lambda s: (s - (self._expected or 0)) & 0xFFFF)
            self._release_audio()

    def _release_audio(self) -> None:
        held = self._held
        while self._expected in held:
            ts, payload, arrival = held.pop(self._expected)
            self._write(ts, payload, arrival, True)
            self._expected = (self._expected + 1) & 0xFFFF

    # -- video ------------------------------------------------------------------------

    def _video(self, seq: int, ts: int, marker: int, payload: bytes, arrival: float) -> None:
        if not payload or (self._next_seq is not None and _after(self._next_seq, seq)):
            return  # padding, or a retransmission of a frame already written or given up
        if marker and seq == self._next_seq and not self._frames and not self._need_key:
            # a whole one-packet frame in order (most, at a call's bitrates): no _Frame
            self._next_seq = (seq + 1) & 0xFFFF
            self._write(ts, self._data(payload), arrival, self._is_keyframe(payload))
            return
        frame = self._frames.get(ts)
        if frame is None:
            frame = self._frames[ts] = _Frame(arrival=arrival)
        frame.packets[seq] = payload
        if marker:
            frame.marker = seq
        elif frame.marker is None and len(self._frames) == 1:
            return  # the only frame, its end not here yet: nothing can be written or given up
        self._drain_video(final=False)

    def _first_seq(self, frame: _Frame) -> int | None:
        """Sequence number of the frame's first packet, if known: right after the previous
        frame's last, or (resynchronising) a packet that starts a key frame."""
        if not self._need_key and self._next_seq is not None:
            return self._next_seq
        for seq, payload in frame.packets.items():
            if self._is_keyframe(payload):
                return seq
        return None

    def _complete(self, frame: _Frame) -> int | None:
        """The first sequence number of ``frame`` if all of its packets are here."""
        marker = frame.marker
        if marker is None:
            return None
        first = self._first_seq(frame)
        if first is None:
            return None
        if first == marker:  # a one-packet frame (most, at a call's bitrates)
            return first
        count = ((marker - first) & 0xFFFF) + 1
        packets = frame.packets
        if count > len(packets):
            return None
        for i in range(count):  # a loop, not all(genexpr): no generator per packet for the GC
            if (first + i) & 0xFFFF not in packets:
                return None
        return first

    def _drain_video(self, *, final: bool) -> None:
        while self._frames:
            ts, frame = next(iter(self._frames.items()))
            first = self._complete(frame)
            if first is not None:
                del self._frames[ts]
                self._emit_frame(ts, frame, first, frame.marker or first)
                continue
            later = sum(1 for f in self._frames.values() if f.marker is not None)
            waiting = later <= VIDEO_LATER_FRAMES and len(self._frames) <= MAX_PENDING_FRAMES
            if waiting and self._need_key:  # resynchronising: a complete key frame ends it
                waiting = not any(self._complete(f) is not None for f in self._frames.values())
            if waiting and not final:
                return
            del self._frames[ts]  # lost: wait for the next key frame
            if not self._need_key:
                self._need_key = True
                self._request_keyframe()

    def _emit_frame(self, ts: int, frame: _Frame, first: int, last: int) -> None:
        if first == last:
            data = self._data(frame.packets[first])
        else:  # a bytearray, not join(genexpr): the GC does not track it
            buf = bytearray()
            for i in range(((last - first) & 0xFFFF) + 1):
                buf += self._data(frame.packets[(first + i) & 0xFFFF])
            data = bytes(buf)
        self._next_seq = (last + 1) & 0xFFFF
        key = self._is_keyframe(frame.packets[first])
        if self._need_key and not key:
            return
        self._need_key = False
        self._write(ts, data, frame.arrival, key)

    # -- output -----------------------------------------------------------------------

    def _write(self, ts: int, data: bytes, arrival: float, key: bool) -> None:
        if not data:
            return
        if not self.clock.synchronised and not self.closed:
            if not self._early or arrival - self._early[0][2] < FIRST_REPORT_WAIT_S:
                self.clock.on_packet(ts, arrival)  # unwraps and anchors in arrival order
                self._early.append((ts, data, arrival, key))
                return
        if self._early:
            self._release_early()
        self._output(ts, data, arrival, key)

    def _release_early(self) -> None:
        early, self._early = self._early, []
        for frame in early:
            self._output(*frame)

    def _output(self, ts: int, data: bytes, arrival: float, key: bool) -> None:
        # RoomRecording.to_ms, in place: one call less per frame
        ms = max(0, int((self.clock.on_packet(ts, arrival) - self._origin) * 1000 + 0.5))
        if ms <= self._last_ms:
            ms = self._last_ms + 1  # strictly increasing per track
        elif self._last_ms >= 0 and ms - self._last_ms > GAP_EVENT_MS:
            self.owner.note(
                {"event": "gap", "party": self.party, "kind": self.kind,
                 "from_ms": self._last_ms, "to_ms": ms}
            )
        if self.key is not None and ms - self._segment_start >= self.owner.segment_ms:
            if key:
                self.owner.close_file(self.key)
                self.key = None
            elif not self._rotate_asked:
                self._rotate_asked = True
                self._request_keyframe()
        file_key = self.key or self._open(ms, data)
        if file_key is None:
            return
        self._last_ms = ms
        self.frames_written += 1
        self._file_write(data, ms, key)

    def _open(self, ms: int, data: bytes) -> str | None:
        width = height = 0
        extradata = None
        if self.codec == "vp8":
            width, height = vp8_dimensions(data) or (0, 0)
        elif self.codec == "h264":
            width, height = h264_dimensions(data) or (0, 0)
            extradata = h264_parameter_sets(data)
        if self.kind == "video" and not width:
            self._need_key = True  # no picture size yet: wait for a key frame with one
            self._request_keyframe()
            return None
        self.key, self._file_write = self.owner.open_file(self, ms, width, height, extradata)
        self._segment_start = ms
        self._rotate_asked = False
        return self.key
