"""Transport-wide feedback packets (draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1)
against hand-computed bytes and a packet Chromium sent."""

from __future__ import annotations

import struct

import pytest

from media.twcc import (
    REFERENCE_US,
    TransportFeedbackRecorder,
    build_feedback,
    parse_feedback,
    transport_sequence,
)

# Chromium's feedback as captured by Wireshark (olivermichel/webrtc-analysis test/include/
# data.h): padding bit set, one run-length chunk (status 1 x 9), nine small deltas, one byte
# of RFC 3550 padding.
CHROMIUM_FEEDBACK = bytes.fromhex(
    "afcd0007 00000001 dd586eb6 00010009 5e911000 20091c0c 2c380004 00081801".replace(" ", "")
)


def test_parses_a_chromium_feedback_packet() -> None:
    fb = parse_feedback(CHROMIUM_FEEDBACK)
    assert (fb.sender_ssrc, fb.media_ssrc, fb.base_seq, fb.count) == (1, 0xDD586EB6, 1, 9)
    base = 6197520 * REFERENCE_US
    deltas_ms = [7, 3, 11, 14, 0, 1, 0, 2, 6]
    expected = {}
    t = base
    for seq, d in enumerate(deltas_ms, start=1):
        t += d * 1000
        expected[seq] = t
    assert fb.arrivals == expected


def test_builds_the_hand_computed_packet() -> None:
    # 100 at 1.000000 s: reference 15 (x 64 ms = 0.96 s), delta 160 ticks (small);
    # 101 lost; 102 at +0.5 ms: delta 2 (small); 103 arrived 6 ticks *before* 102: large -6.
    # Symbols 1,0,1,2 -> one two-bit vector chunk 11|01 00 01 10 00 00 00 = 0xD180.
    packet = build_feedback(0x01020304, 0x0A0B0C0D, 100,
                            [1_000_000, None, 1_000_500, 999_000], 3)
    assert packet.hex() == (
        "8fcd0006" "01020304" "0a0b0c0d" "00640004" "00000f03" "d180" "a002" "fffa" "0000"
    )
    fb = parse_feedback(packet)
    assert fb.arrivals == {100: 1_000_000, 101: None, 102: 1_000_500, 103: 999_000}


def test_run_length_and_one_bit_vector_chunks() -> None:
    arrivals: list[int | None] = [5_000_000 + 1000 * i for i in range(20)]
    arrivals += [None, 5_030_000, None]
    packet = build_feedback(1, 2, 65530, arrivals, 255)
    chunks = struct.unpack_from("!2H", packet, 20)
    assert chunks[0] == (1 << 13) | 20  # run-length: 20 x small delta
    assert chunks[1] == 0x8000 | (0b010 << 11)  # one-bit vector: lost, received, lost
    fb = parse_feedback(packet)
    assert fb.count == 23 and fb.base_seq == 65530
    assert fb.arrivals[(65530 + 21) & 0xFFFF] == 5_030_000
    assert fb.arrivals[(65530 + 20) & 0xFFFF] is None
    assert len(packet) % 4 == 0 and struct.unpack_from("!H", packet, 2)[0] == len(packet) // 4 - 1


def test_recorder_reports_in_order_across_wrap_and_continues() -> None:
    rec = TransportFeedbackRecorder()
    for seq, at in ((65534, 10_000), (0, 12_000), (65535, 11_000), (2, 14_000)):
        rec.record(seq, at)
    (first,) = rec.feedback(7, 8)
    fb = parse_feedback(first)
    assert fb.base_seq == 65534 and fb.count == 5
    assert fb.arrivals == {65534: 10_000, 65535: 11_000, 0: 12_000, 1: None, 2: 14_000}
    assert rec.feedback(7, 8) == []
    rec.record(1, 20_000)  # too late: already reported lost
    rec.record(3, 21_000)
    (second,) = rec.feedback(7, 8)
    fb = parse_feedback(second)
    assert (fb.base_seq, fb.arrivals) == (3, {3: 21_000})
    assert second[19] == 1  # feedback packet count


def test_recorder_splits_when_a_delta_does_not_fit() -> None:
    rec = TransportFeedbackRecorder()
    rec.record(10, 1_000_000)
    rec.record(11, 1_000_000 + 9_000_000)  # 9 s later: > 8.19 s of 16-bit deltas
    packets = rec.feedback(1, 2)
    assert [parse_feedback(p).arrivals for p in packets] == [{10: 1_000_000}, {11: 10_000_000}]


def _rtp_with_extensions(elements: bytes) -> bytes:
    ext = elements + bytes(-len(elements) % 4)
    return (
        bytes([0x90, 96]) + b"\x00\x01" + b"\x00" * 8
        + b"\xbe\xde" + struct.pack("!H", len(ext) // 4) + ext + b"payload"
    )


def test_transport_sequence_from_one_byte_header_extension() -> None:
    # mid (id 4, "1"), padding byte, transport-cc (id 3, 2 bytes: 0x1234)
    data = _rtp_with_extensions(bytes([0x40, ord("1"), 0x00, 0x31, 0x12, 0x34]))
    assert transport_sequence(data, 3) == 0x1234
    assert transport_sequence(data, 5) is None
    assert transport_sequence(bytes([0x80, 96]) + b"\x00" * 10 + b"x", 3) is None


@pytest.mark.parametrize("bad", [b"", CHROMIUM_FEEDBACK[:20], b"\x81\xc9" + b"\x00" * 30])
def test_parse_rejects_other_packets(bad: bytes) -> None:
    with pytest.raises(ValueError):
        parse_feedback(bad)
