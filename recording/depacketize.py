"""RTP payloads back to codec frames, without decoding (what the live recorder writes).

* VP8 (RFC 7741 §4.2): strip the payload descriptor; a frame is the concatenation of its
  packets' remaining bytes. The frame header (RFC 6386 §9.1) gives key frame and size.
* H.264 (RFC 6184): single NAL unit packets (§5.6), STAP-A (§5.7.1) and FU-A (§5.8) back to
  an Annex B byte stream; the SPS (ITU-T H.264 §7.3.2.1.1) gives the picture size.
* Opus (RFC 7587 §4.2): one Opus packet per RTP payload, written as is.
"""

from __future__ import annotations

from collections.abc import Callable

START_CODE = b"\x00\x00\x00\x01"


def vp8_frame_data(payload: bytes) -> bytes:
    """The VP8 bitstream bytes of one packet (RFC 7741 §4.2 descriptor removed)."""
    n = len(payload)
    if n < 1:
        return b""
    i = 1
    if payload[0] & 0x80:  # X: extension octet follows
        if n < 2:
            return b""
        x = payload[1]
        i = 2
        if x & 0x80:  # I: PictureID, 7 or 15 bits (M)
            i += 2 if i < n and payload[i] & 0x80 else 1
        if x & 0x40:  # L: TL0PICIDX
            i += 1
        if x & 0x30:  # T or K: TID/Y/KEYIDX
            i += 1
    return payload[i:] if i < n else b""



def vp8_dimensions(frame: bytes) -> tuple[int, int] | None:
    """Width and height of a VP8 key frame (RFC 6386 §9.1: start code 9d 01 2a)."""
    if len(frame) < 10 or frame[0] & 0x01 or frame[3:6] != b"\x9d\x01\x2a":
        return None
    width = int.from_bytes(frame[6:8], "little") & 0x3FFF
    height = int.from_bytes(frame[8:10], "little") & 0x3FFF
    return (width, height) if width and height else None


def h264_annexb(payload: bytes) -> bytes:
    """One RTP payload as Annex B bytes; FU-A continuations return their bare fragment, so
    the packets of a frame concatenated in sequence order give the frame."""
    n = len(payload)
    if n < 1:
        return b""
    nal_type = payload[0] & 0x1F
    if 1 <= nal_type <= 23:  # §5.6 single NAL unit packet
        return START_CODE + payload
    if nal_type == 24:  # §5.7.1 STAP-A: (16-bit size, NAL unit)*
        out = bytearray()
        i = 1
        while i + 2 <= n:
            size = (payload[i] << 8) | payload[i + 1]
            i += 2
            if size == 0 or i + size > n:
                break
            out += START_CODE + payload[i : i + size]
            i += size
        return bytes(out)
    if nal_type == 28 and n > 2:  # §5.8 FU-A: indicator, header (S, E, type), fragment
        header = payload[1]
        if header & 0x80:
            return START_CODE + bytes([(payload[0] & 0xE0) | (header & 0x1F)]) + payload[2:]
        return payload[2:]
    return b""  # STAP-B, MTAP, FU-B: not in the WebRTC packetization mode 1 profile


def annexb_units(stream: bytes) -> list[bytes]:
    """The NAL units of an Annex B byte stream (4- or 3-byte start codes)."""
    units: list[bytes] = []
    i = stream.find(b"\x00\x00\x01")
    while i >= 0:
        start = i + 3
        nxt = stream.find(b"\x00\x00\x01", start)
        end = len(stream) if nxt < 0 else nxt
        unit = stream[start:end]
        if nxt >= 0 and unit.endswith(b"\x00"):
            unit = unit[:-1]  # the zero of the next 4-byte start code
        if unit:
            units.append(unit)
        i = nxt
    return units


def annexb_to_avcc(frame: bytes) -> bytes:
    """An Annex B frame as 4-byte length-prefixed NAL units (ISO/IEC 14496-15 §5.3.2), the
    form Matroska's ``V_MPEG4/ISO/AVC`` stores."""
    return b"".join(len(u).to_bytes(4, "big") + u for u in annexb_units(frame))


def avc_configuration(parameter_sets: bytes) -> bytes:
    """The AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1; the Matroska
    CodecPrivate) for Annex B SPS and PPS, with 4-byte NAL lengths."""
    units = annexb_units(parameter_sets)
    sps = [u for u in units if u[0] & 0x1F == 7]
    pps = [u for u in units if u[0] & 0x1F == 8]
    if not sps or len(sps[0]) < 4:
        return b""
    out = bytearray([1, sps[0][1], sps[0][2], sps[0][3], 0xFF, 0xE0 | len(sps)])
    for unit in sps:
        out += len(unit).to_bytes(2, "big") + unit
    out.append(len(pps))
    for unit in pps:
        out += len(unit).to_bytes(2, "big") + unit
    return bytes(out)


def h264_parameter_sets(frame: bytes) -> bytes:
    """The SPS and PPS of an Annex B frame, as Annex B (the Matroska CodecPrivate source)."""
    return b"".join(START_CODE + u for u in annexb_units(frame) if u[0] & 0x1F in (7, 8))


class _Bits:
    """Exp-Golomb reader over an RBSP (ITU-T H.264 §9.1), emulation prevention removed."""

    def __init__(self, rbsp: bytes) -> None:
        self.data = rbsp
        self.pos = 0

    def u(self, n: int) -> int:
        value = 0
        for _ in range(n):
            byte = self.data[self.pos >> 3] if self.pos >> 3 < len(self.data) else 0
            value = (value << 1) | ((byte >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return value

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0 and zeros < 32:
            zeros += 1
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


def _skip_scaling_list(bits: _Bits, size: int) -> None:
    last = nxt = 8
    for _ in range(size):
        if nxt:
            nxt = (last + bits.se() + 256) % 256
        last = nxt or last


def h264_dimensions(frame: bytes) -> tuple[int, int] | None:
    """Picture width and height from the first SPS in ``frame`` (H.264 §7.3.2.1.1, §7.4.2.1.1
    frame cropping)."""
    sps = next((u for u in annexb_units(frame) if u[0] & 0x1F == 7), None)
    if sps is None or len(sps) < 4:
        return None
    bits = _Bits(sps[1:].replace(b"\x00\x00\x03", b"\x00\x00"))
    profile = bits.u(8)
    bits.u(16)  # constraint flags, level
    bits.ue()  # seq_parameter_set_id
    chroma = 1
    if profile in _HIGH_PROFILES:
        chroma = bits.ue()
        if chroma == 3:
            bits.u(1)
        bits.ue(), bits.ue(), bits.u(1)  # bit depths, qpprime_y_zero_transform_bypass
        if bits.u(1):  # seq_scaling_matrix_present
            for i in range(8 if chroma != 3 else 12):
                if bits.u(1):
                    _skip_scaling_list(bits, 16 if i < 6 else 64)
    bits.ue()  # log2_max_frame_num_minus4
    poc_type = bits.ue()
    if poc_type == 0:
        bits.ue()
    elif poc_type == 1:
        bits.u(1), bits.se(), bits.se()
        for _ in range(bits.ue()):
            bits.se()
    bits.ue(), bits.u(1)  # max_num_ref_frames, gaps_in_frame_num_allowed
    width_mbs = bits.ue() + 1
    height_units = bits.ue() + 1
    frame_mbs_only = bits.u(1)
    if not frame_mbs_only:
        bits.u(1)
    bits.u(1)  # direct_8x8_inference
    crop = (bits.ue(), bits.ue(), bits.ue(), bits.ue()) if bits.u(1) else (0, 0, 0, 0)
    unit_x = 1 if chroma in (0, 3) else 2
    unit_y = (1 if chroma in (0, 2, 3) else 2) * (2 - frame_mbs_only)
    width = width_mbs * 16 - unit_x * (crop[0] + crop[1])
    height = (2 - frame_mbs_only) * height_units * 16 - unit_y * (crop[2] + crop[3])
    return (width, height) if width > 0 and height > 0 else None


FrameData = Callable[[bytes], bytes]


def frame_data_for(codec: str) -> FrameData:
    """The per-packet payload-to-bitstream function for a codec name (``vp8``, ``h264``,
    ``opus``)."""
    if codec == "vp8":
        return vp8_frame_data
    if codec == "h264":
        return h264_annexb
    return bytes
