"""Depacketisers against aiortc's packetisers (RFC 7741 VP8, RFC 6184 H.264 FU-A/STAP-A),
the SPS/VP8 header picture sizes, and storage keys that cannot leave the store."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import pytest
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder

from recording.depacketize import (
    annexb_units,
    h264_annexb,
    h264_dimensions,
    h264_parameter_sets,
    vp8_dimensions,
    vp8_frame_data,
)
from recording.store import BadKey, LocalStore
from tests.media.conftest import H264, VP8_OPUS


def _packets(path: str) -> list[av.Packet]:
    with av.open(path) as container:
        return [p for p in container.demux(video=0) if p.size]


def test_h264_fu_a_and_stap_a_back_to_the_same_nal_units() -> None:
    encoder = H264Encoder()
    kinds: set[int] = set()
    for packet in _packets(H264)[:40]:
        payloads, _ = encoder.pack(packet)
        kinds.update(p[0] & 0x1F for p in payloads)
        rebuilt = b"".join(h264_annexb(p) for p in payloads)
        # aiortc drops access unit delimiters, so compare without them
        wanted = [u for u in annexb_units(bytes(packet)) if u[0] & 0x1F != 9]
        assert [u for u in annexb_units(rebuilt) if u[0] & 0x1F != 9] == wanted
    big = av.Packet(b"\x00\x00\x00\x01\x65" + bytes(range(1, 256)) * 20)  # > one MTU
    big.pts, big.time_base = 0, Fraction(1, 90000)
    payloads, _ = encoder.pack(big)
    kinds.update(p[0] & 0x1F for p in payloads)
    assert annexb_units(b"".join(h264_annexb(p) for p in payloads)) == annexb_units(bytes(big))
    assert {24, 28} <= kinds, f"STAP-A and FU-A exercised: {kinds}"
    first = bytes(_packets(H264)[0])
    assert h264_dimensions(first) == (320, 240)
    assert [u[0] & 0x1F for u in annexb_units(h264_parameter_sets(first))] == [7, 8]


def test_vp8_descriptor_removed_frame_identical() -> None:
    encoder = Vp8Encoder()
    for packet in _packets(VP8_OPUS)[:30]:
        payloads, _ = encoder.pack(packet)
        assert b"".join(vp8_frame_data(p) for p in payloads) == bytes(packet)
    assert vp8_dimensions(bytes(_packets(VP8_OPUS)[0])) == (320, 240)
    assert vp8_dimensions(bytes(_packets(VP8_OPUS)[1])) is None  # a delta frame


@pytest.mark.parametrize("key", [
    "../etc/passwd", "/etc/passwd", "abc/x.webm", "0" * 36 + "/../x",
    "00000000-0000-0000-0000-000000000000/../../x", "00000000-0000-0000-0000-000000000000/.x",
])
def test_store_refuses_keys_that_are_paths(tmp_path: Path, key: str) -> None:
    store = LocalStore(tmp_path)
    with pytest.raises(BadKey):
        store.local_path(key)
