"""Matroska and WebM written live, in Python, without a muxer library (RFC 9559 Matroska,
RFC 8794 EBML).

A recording file is a byte-for-byte copy of codec frames with a few bytes of framing each:
the header (EBML header, a Segment of unknown size, Info, one TrackEntry) and then Clusters,
each a Timestamp and SimpleBlocks (RFC 9559 §10.2). ``ClusterBuffer`` frames blocks on the
event loop — one ``struct.pack`` and two ``bytearray`` appends per frame — and hands whole
Clusters over to be written; nothing per frame crosses a thread or the GIL (PyAV's ``mux``
released and re-took the GIL per packet, which cost the SFU more than the muxing itself).

While it is written the file has a Segment of unknown size, no Duration and no Cues: a crash
may cut it after any Cluster and a demuxer reads up to the cut (start-up recovery then
copy-remuxes it, ``recording.writer.finalise``). A clean close needs no remux: ``finish``
appends the Cues (one per Cluster that starts with a key frame; video Clusters start at each
key frame) and overwrites space reserved in the header with the SeekHead and the Duration,
and the Segment's size with the real one (RFC 9559 §6.3, §7).
"""

from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass

from recording.depacketize import annexb_to_avcc, avc_configuration

# Element IDs (RFC 8794 §11.2, RFC 9559 §5.1), with their marker bits, as written
EBML = b"\x1a\x45\xdf\xa3"
EBML_VERSION = b"\x42\x86"
EBML_READ_VERSION = b"\x42\xf7"
EBML_MAX_ID_LENGTH = b"\x42\xf2"
EBML_MAX_SIZE_LENGTH = b"\x42\xf3"
DOC_TYPE = b"\x42\x82"
DOC_TYPE_VERSION = b"\x42\x87"
DOC_TYPE_READ_VERSION = b"\x42\x85"
SEGMENT = b"\x18\x53\x80\x67"
INFO = b"\x15\x49\xa9\x66"
TIMESTAMP_SCALE = b"\x2a\xd7\xb1"
MUXING_APP = b"\x4d\x80"
WRITING_APP = b"\x57\x41"
TRACKS = b"\x16\x54\xae\x6b"
TRACK_ENTRY = b"\xae"
TRACK_NUMBER = b"\xd7"
TRACK_UID = b"\x73\xc5"
TRACK_TYPE = b"\x83"
FLAG_LACING = b"\x9c"
CODEC_ID = b"\x86"
CODEC_PRIVATE = b"\x63\xa2"
SEEK_PRE_ROLL = b"\x56\xbb"
VIDEO = b"\xe0"
PIXEL_WIDTH = b"\xb0"
PIXEL_HEIGHT = b"\xba"
AUDIO = b"\xe1"
SAMPLING_FREQUENCY = b"\xb5"
CHANNELS = b"\x9f"
CLUSTER = b"\x1f\x43\xb6\x75"
SEEK_HEAD = b"\x11\x4d\x9b\x74"
SEEK = b"\x4d\xbb"
SEEK_ID = b"\x53\xab"
SEEK_POSITION = b"\x53\xac"
DURATION = b"\x44\x89"
CUES = b"\x1c\x53\xbb\x6b"
CUE_POINT = b"\xbb"
CUE_TIME = b"\xb3"
CUE_TRACK_POSITIONS = b"\xb7"
CUE_TRACK = b"\xf7"
CUE_CLUSTER_POSITION = b"\xf1"
VOID = b"\xec"

UNKNOWN_SIZE = b"\x01\xff\xff\xff\xff\xff\xff\xff"
"""An 8-byte data size with all value bits set: "unknown" (RFC 8794 §6.2), for a Segment that
grows while it is written."""
CLUSTER_HEAD = struct.Struct(">4sQBBQ")
"""Cluster ID, 8-byte data size (0x01 marker + 56 bits), Timestamp element (ID 0xE7, size 8,
the cluster's time in ms)."""
BLOCK_HEAD = struct.Struct(">BIBhB")
"""SimpleBlock (RFC 9559 §10.2.4): ID 0xA3, a 4-byte data size, track number 1 (as 0x81),
timestamp relative to the cluster (signed 16 bits), flags (0x80: key frame; no lacing)."""
MAX_RELATIVE_MS = 0x7FFF
SEEK_HEAD_SPACE = 80
"""Bytes reserved (a Void) at the start of the Segment for the SeekHead written at close."""
DURATION_SPACE = 11
"""Bytes reserved in Info for the Duration (ID, size, 8-byte float)."""
TIMESTAMP_SCALE_NS = 1_000_000
"""Block timestamps are in milliseconds, as everything on the consultation clock."""
OPUS_SEEK_PRE_ROLL_NS = 80_000_000
"""RFC 7845 §4.6: decode 80 ms before a seek target for the output to converge."""

CODECS = {"opus": ("matroska", "A_OPUS"), "vp8": ("webm", "V_VP8"),
          "h264": ("matroska", "V_MPEG4/ISO/AVC")}
"""Codec → (DocType, CodecID, RFC 9559 §5.1.4.1.4 and the Matroska codec mappings)."""


def vint(n: int) -> bytes:
    """``n`` as the shortest EBML variable-size integer that does not read as "unknown"
    (RFC 8794 §4)."""
    for width in range(1, 9):
        if n < (1 << (7 * width)) - 1:
            return (n | (1 << (7 * width))).to_bytes(width, "big")
    raise ValueError(f"EBML size out of range: {n}")


def element(element_id: bytes, data: bytes) -> bytes:
    return element_id + vint(len(data)) + data


def uint(element_id: bytes, value: int) -> bytes:
    return element(element_id, value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def void(total: int) -> bytes:
    """A Void element (RFC 9559 §5.1.1.1) of ``total`` bytes (2 to 128), to be overwritten."""
    return VOID + vint(total - 2) + bytes(total - 2)


def opus_head(channels: int = 2) -> bytes:
    """The Opus identification header (RFC 7845 §5.1), the track's CodecPrivate. Pre-skip 0:
    the frames are what a live listener decoded, from whatever state the sender's encoder
    was in, with nothing to trim."""
    return b"OpusHead" + struct.pack("<BBHIhB", 1, channels, 0, 48000, 0, 0)


@dataclass(frozen=True, slots=True)
class Header:
    """A file's first bytes and where the parts ``finish`` fills in are."""

    data: bytes
    segment_at: int
    """File offset of the Segment's data: SeekHead and Cues positions count from here."""
    duration_at: int
    """File offset of the Void in Info that the Duration replaces."""
    info: int
    tracks: int
    """Positions of Info and Tracks in the Segment."""


def file_header(codec: str, width: int = 0, height: int = 0,
                extradata: bytes | None = None) -> Header:
    """The bytes before the first Cluster of a one-track file of ``codec``."""
    doc_type, codec_id = CODECS[codec]
    ebml = element(EBML, b"".join((
        uint(EBML_VERSION, 1), uint(EBML_READ_VERSION, 1), uint(EBML_MAX_ID_LENGTH, 4),
        uint(EBML_MAX_SIZE_LENGTH, 8), element(DOC_TYPE, doc_type.encode()),
        uint(DOC_TYPE_VERSION, 4), uint(DOC_TYPE_READ_VERSION, 2),
    )))
    scale = uint(TIMESTAMP_SCALE, TIMESTAMP_SCALE_NS)
    info_data = (scale + void(DURATION_SPACE) + element(MUXING_APP, b"kundlinow")
                 + element(WRITING_APP, b"kundlinow"))
    info = element(INFO, info_data)
    track = [uint(TRACK_NUMBER, 1), uint(TRACK_UID, secrets.randbits(63) | 1),
             uint(TRACK_TYPE, 2 if codec == "opus" else 1), uint(FLAG_LACING, 0),
             element(CODEC_ID, codec_id.encode())]
    if codec == "opus":
        track += [element(CODEC_PRIVATE, opus_head()),
                  uint(SEEK_PRE_ROLL, OPUS_SEEK_PRE_ROLL_NS),
                  element(AUDIO, element(SAMPLING_FREQUENCY, struct.pack(">d", 48000.0))
                          + uint(CHANNELS, 2))]
    else:
        config = avc_configuration(extradata) if codec == "h264" and extradata else b""
        if config:
            track.append(element(CODEC_PRIVATE, config))
        track.append(element(VIDEO, uint(PIXEL_WIDTH, width) + uint(PIXEL_HEIGHT, height)))
    tracks = element(TRACKS, element(TRACK_ENTRY, b"".join(track)))
    segment_at = len(ebml) + len(SEGMENT) + len(UNKNOWN_SIZE)
    info_head = len(info) - len(info_data)
    return Header(
        data=ebml + SEGMENT + UNKNOWN_SIZE + void(SEEK_HEAD_SPACE) + info + tracks,
        segment_at=segment_at,
        duration_at=segment_at + SEEK_HEAD_SPACE + info_head + len(scale),
        info=SEEK_HEAD_SPACE, tracks=SEEK_HEAD_SPACE + len(info),
    )


@dataclass(frozen=True, slots=True)
class Finish:
    """How a cleanly closed file ends (``ClusterBuffer.finish``)."""

    tail: bytes
    """Appended: the last Clusters and the Cues."""
    patches: list[tuple[int, bytes]]
    """(file offset, bytes) overwritten: Segment size, SeekHead, Duration."""
    first_ms: int
    duration_ms: int
    """From the first frame to the end of the last (its length taken as the step before it)."""


def _seek(element_id: bytes, position: int) -> bytes:
    return element(SEEK, element(SEEK_ID, element_id) + uint(SEEK_POSITION, position))


class ClusterBuffer:
    """The bytes of one live file not yet handed over, framed on the event loop: ``write``
    per frame; ``take`` ends the open Cluster and returns everything new (the header first);
    ``finish`` ends the file."""

    __slots__ = ("_blocks", "_convert", "_cues", "_cut_on_key", "_done", "_first", "_header",
                 "_last", "_size", "_start", "_step")

    def __init__(self, codec: str, header: Header) -> None:
        self._header = header
        self._done = bytearray(header.data)
        """Whole Clusters (and, until the first ``take``, the header), ready to append."""
        self._size = len(header.data)
        """Bytes of the file so far, the open Cluster excepted."""
        self._blocks = bytearray()
        self._start = -1
        """The open Cluster's timestamp (ms); -1: none open."""
        self._cues: list[tuple[int, int]] = []
        """(ms, Segment position) of each Cluster that starts with a key frame."""
        self._cut_on_key = codec != "opus"
        """Video starts a Cluster at each key frame, so each gets a cue (every Opus frame is
        a key frame: audio Clusters are cut by time only)."""
        self._first = self._last = -1
        self._step = 0
        self._convert = annexb_to_avcc if codec == "h264" else None
        """H.264 in Matroska is length-prefixed (ISO/IEC 14496-15), not Annex B."""

    def write(self, data: bytes, ms: int, keyframe: bool) -> None:
        """Frame ``data`` at ``ms`` (strictly increasing) as a SimpleBlock."""
        if self._convert is not None:
            data = self._convert(data)
        relative = ms - self._start
        if self._start < 0 or relative > MAX_RELATIVE_MS or (keyframe and self._cut_on_key):
            self._new_cluster(ms, keyframe)
            relative = 0
        blocks = self._blocks
        blocks += BLOCK_HEAD.pack(0xA3, 0x10000000 | (len(data) + 4), 0x81, relative,
                                  0x80 if keyframe else 0)
        blocks += data
        self._step = ms - self._last
        self._last = ms

    def _new_cluster(self, ms: int, keyframe: bool) -> None:
        self._end_cluster()
        self._start = ms
        if keyframe:
            self._cues.append((ms, self._size - self._header.segment_at))
        if self._first < 0:
            self._first = ms

    def _end_cluster(self) -> None:
        if self._blocks:
            size = len(self._blocks) + 10
            self._done += CLUSTER_HEAD.pack(CLUSTER, (1 << 56) | size, 0xE7, 0x88, self._start)
            self._done += self._blocks
            self._size += 22 + len(self._blocks)
            self._blocks = bytearray()
        self._start = -1

    def take(self) -> bytes:
        """Everything written since the last ``take``, as whole Clusters (empty if nothing)."""
        self._end_cluster()
        if not self._done:
            return b""
        out = bytes(self._done)
        self._done = bytearray()
        return out

    def finish(self) -> Finish | None:
        """The end of a cleanly closed file; ``None`` if it never got a frame."""
        tail = self.take()
        if self._first < 0:
            return None
        header = self._header
        cues = element(CUES, b"".join(
            element(CUE_POINT, uint(CUE_TIME, ms) + element(
                CUE_TRACK_POSITIONS, uint(CUE_TRACK, 1) + uint(CUE_CLUSTER_POSITION, position)))
            for ms, position in self._cues
        ))
        cues_at = self._size - header.segment_at
        seek_head = element(SEEK_HEAD, _seek(INFO, header.info) + _seek(TRACKS, header.tracks)
                            + _seek(CUES, cues_at))
        seek_head += void(SEEK_HEAD_SPACE - len(seek_head))
        end_ms = self._last + max(self._step, 1)
        segment_size = cues_at + len(cues)
        return Finish(
            tail=tail + cues,
            patches=[
                (header.segment_at - 8, ((1 << 56) | segment_size).to_bytes(8, "big")),
                (header.segment_at, seek_head),
                (header.duration_at, DURATION + b"\x88" + struct.pack(">d", float(end_ms))),
            ],
            first_ms=self._first, duration_ms=end_ms - self._first,
        )
