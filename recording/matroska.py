"""Matroska and WebM written live, in Python, without a muxer library (RFC 9559 Matroska,
RFC 8794 EBML).

A recording file is a byte-for-byte copy of codec frames with a few bytes of framing each:
the header (EBML header, a Segment of unknown size, Info, one TrackEntry) and then Clusters,
each a Timestamp and SimpleBlocks (RFC 9559 §10.2). ``ClusterBuffer`` frames blocks on the
event loop — one ``struct.pack`` and two ``bytearray`` appends per frame — and hands whole
Clusters over to be written; nothing per frame crosses a thread or the GIL (PyAV's ``mux``
released and re-took the GIL per packet, which cost the SFU more than the muxing itself).

The live file has no Duration and no Cues (a crash may cut it anywhere; a demuxer reads
Clusters up to the cut): the copy-remux at close (``recording.writer.finalise``) adds both.
"""

from __future__ import annotations

import secrets
import struct

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


def opus_head(channels: int = 2) -> bytes:
    """The Opus identification header (RFC 7845 §5.1), the track's CodecPrivate. Pre-skip 0:
    the frames are what a live listener decoded, from whatever state the sender's encoder
    was in, with nothing to trim."""
    return b"OpusHead" + struct.pack("<BBHIhB", 1, channels, 0, 48000, 0, 0)


def file_header(codec: str, width: int = 0, height: int = 0,
                extradata: bytes | None = None) -> bytes:
    """The bytes before the first Cluster of a one-track file of ``codec``."""
    doc_type, codec_id = CODECS[codec]
    header = element(EBML, b"".join((
        uint(EBML_VERSION, 1), uint(EBML_READ_VERSION, 1), uint(EBML_MAX_ID_LENGTH, 4),
        uint(EBML_MAX_SIZE_LENGTH, 8), element(DOC_TYPE, doc_type.encode()),
        uint(DOC_TYPE_VERSION, 4), uint(DOC_TYPE_READ_VERSION, 2),
    )))
    info = element(INFO, uint(TIMESTAMP_SCALE, TIMESTAMP_SCALE_NS)
                   + element(MUXING_APP, b"kundlinow") + element(WRITING_APP, b"kundlinow"))
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
    return header + SEGMENT + UNKNOWN_SIZE + info + tracks


class ClusterBuffer:
    """The Clusters of one live file not yet handed over. ``write`` is called per frame on
    the event loop; ``take`` ends the open Cluster and returns the bytes to append."""

    __slots__ = ("_blocks", "_convert", "_done", "_start")

    def __init__(self, codec: str) -> None:
        self._blocks = bytearray()
        self._start = -1
        """The open Cluster's timestamp (ms); -1: none open."""
        self._done = bytearray()
        """Whole Clusters, ready to append."""
        self._convert = annexb_to_avcc if codec == "h264" else None
        """H.264 in Matroska is length-prefixed (ISO/IEC 14496-15), not Annex B."""

    def write(self, data: bytes, ms: int, keyframe: bool) -> None:
        """Frame ``data`` at ``ms`` (strictly increasing) as a SimpleBlock."""
        if self._convert is not None:
            data = self._convert(data)
        relative = ms - self._start
        if self._start < 0 or relative > MAX_RELATIVE_MS:
            self._end_cluster()
            self._start = ms
            relative = 0
        blocks = self._blocks
        blocks += BLOCK_HEAD.pack(0xA3, 0x10000000 | (len(data) + 4), 0x81, relative,
                                  0x80 if keyframe else 0)
        blocks += data

    def _end_cluster(self) -> None:
        if self._blocks:
            size = len(self._blocks) + 10
            self._done += CLUSTER_HEAD.pack(CLUSTER, (1 << 56) | size, 0xE7, 0x88, self._start)
            self._done += self._blocks
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
