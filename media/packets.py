"""RTP wire helpers for forwarding without full parsing (RFC 3550 §5.1).

The forwarding path never builds aiortc ``RtpPacket`` objects: it reads the fixed header
with one ``struct`` call, finds the payload, and writes a fresh 12-byte header in front of
the untouched payload. Header extensions of the publisher are not forwarded (their IDs are
negotiated per peer connection); subscribers demultiplex on the SSRC announced in SDP.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

RTP_HEADER = struct.Struct("!BBHII")
"""V/P/X/CC, M/PT, sequence number, timestamp, SSRC (RFC 3550 §5.1)."""
RTX_OSN = struct.Struct("!H")
"""Original sequence number at the start of an RTX payload (RFC 4588 §4)."""


def seq_gt(a: int, b: int) -> bool:
    """RFC 1982 serial number comparison for 16-bit sequence numbers."""
    return a != b and ((a - b) & 0xFFFF) < 0x8000


def payload_bounds(data: bytes) -> tuple[int, int]:
    """Return ``(start, end)`` of the payload, skipping CSRCs, the header extension
    (RFC 3550 §5.3.1) and padding (RFC 3550 §5.1 P bit). ``start >= end`` means empty."""
    b0 = data[0]
    start = 12 + 4 * (b0 & 0x0F)
    if b0 & 0x10:
        if len(data) < start + 4:
            return 0, 0
        start += 4 + 4 * ((data[start + 2] << 8) | data[start + 3])
    end = len(data)
    if b0 & 0x20:
        end -= data[-1]
    return start, end


def vp8_is_keyframe(payload: bytes) -> bool:
    """True if ``payload`` starts a VP8 key frame.

    RFC 7741 §4.2 payload descriptor (X, S, PID; I/L/T/K extensions), then §4.3 payload
    header: the P bit (inverse key frame flag) of the first partition's first byte.
    """
    n = len(payload)
    if n < 2:
        return False
    b0 = payload[0]
    if not (b0 & 0x10) or (b0 & 0x07):  # S=1 and PID=0: start of partition 0
        return False
    i = 1
    if b0 & 0x80:  # X
        x = payload[1]
        i = 2
        if x & 0x80:  # I: picture id, 7 or 15 bits (M)
            if i >= n:
                return False
            i += 2 if payload[i] & 0x80 else 1
        if x & 0x40:  # L: TL0PICIDX
            i += 1
        if x & 0x30:  # T or K: TID/Y/KEYIDX
            i += 1
    return i < n and not (payload[i] & 0x01)


def h264_is_keyframe(payload: bytes) -> bool:
    """True if ``payload`` carries an IDR slice or SPS (RFC 6184 §5.4 NAL unit types;
    §5.7.1 STAP-A aggregation; §5.8 FU-A start fragments)."""
    n = len(payload)
    if n < 1:
        return False
    nal = payload[0] & 0x1F
    if nal in (5, 7):
        return True
    if nal == 24:  # STAP-A: 16-bit size, NAL unit, ...
        i = 1
        while i + 2 < n:
            size = (payload[i] << 8) | payload[i + 1]
            if payload[i + 2] & 0x1F in (5, 7):
                return True
            i += 2 + size
        return False
    if nal == 28 and n > 1:  # FU-A: start bit and original type
        return bool(payload[1] & 0x80) and payload[1] & 0x1F in (5, 7)
    return False


def always_start(payload: bytes) -> bool:
    """Audio has no key frames: every packet is a valid start."""
    return True


def keyframe_detector(codec_name: str) -> Callable[[bytes], bool]:
    """The keyframe test for payloads of the codec named ``codec_name`` (SDP encoding name)."""
    name = codec_name.lower()
    if name == "vp8":
        return vp8_is_keyframe
    if name == "h264":
        return h264_is_keyframe
    return always_start
