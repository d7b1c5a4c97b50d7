"""Transport-wide sequence numbers on the SFU's outgoing packets (media.transport_seq):
the bytes of the RFC 8285 one-byte header extension, the payload behind it untouched, and the
send history feedback is matched against."""

from __future__ import annotations

import pytest

from media.packets import RTP_HEADER, payload_bounds
from media.transport_seq import HEADER_BYTES, HISTORY, TransportSequencer
from media.twcc import transport_sequence


def _packet(sequencer: TransportSequencer, payload: bytes, b0: int = 0x80) -> bytes:
    buf = bytearray(HEADER_BYTES + len(payload))
    head = sequencer.pack_header(buf, b0, 0x80 | 96, 4242, 90_000, 0x11223344)
    buf[head:] = payload
    return bytes(buf)


def test_header_carries_the_number_in_a_one_byte_extension_and_keeps_the_payload() -> None:
    sequencer = TransportSequencer(ext_id=5)
    sequencer.next_seq = 0x1234
    payload = bytes(range(200))
    data = _packet(sequencer, payload)
    assert data[12:20].hex() == "bede0001" "51" "1234" "00"  # profile, 1 word, id 5 len 2, pad
    b0, b1, seq, ts, ssrc = RTP_HEADER.unpack_from(data)
    assert (b0, b1, seq, ts, ssrc) == (0x90, 0x80 | 96, 4242, 90_000, 0x11223344)
    assert transport_sequence(data, 5) == 0x1234
    start, end = payload_bounds(data)
    assert data[start:end] == payload


def test_a_padding_probe_keeps_its_padding_behind_the_extension() -> None:
    sequencer = TransportSequencer(ext_id=3)
    data = _packet(sequencer, bytes(254) + b"\xff", b0=0xA0)
    assert data[0] == 0xB0  # P and X
    assert transport_sequence(data, 3) == 0
    start, end = payload_bounds(data)
    assert start == end  # padding only


def test_only_sent_packets_take_a_number_and_it_wraps() -> None:
    sequencer = TransportSequencer(ext_id=1)
    sequencer.next_seq = 0xFFFE
    first = _packet(sequencer, b"x")
    again = _packet(sequencer, b"y")  # the first was never sent: same number
    assert transport_sequence(first, 1) == transport_sequence(again, 1) == 0xFFFE
    for at in (10, 20, 30):
        sequencer.sent(100 + at, at)
    assert sequencer.next_seq == 1 and sequencer.packets == 3
    assert sequencer.lookup(0xFFFF) == (20, 120) and sequencer.lookup(0) == (30, 130)


def test_history_is_bounded_and_a_report_counts_each_packet_once() -> None:
    sequencer = TransportSequencer(ext_id=1)
    for k in range(HISTORY + 10):
        sequencer.sent(1000, k)
    assert sequencer.lookup(5) is None  # overwritten
    matched = sequencer.match({HISTORY + 5: 777, HISTORY + 6: None, 3: 1})
    assert [(p.seq, p.send_us, p.arrival_us) for p in matched] == [
        (HISTORY + 5, HISTORY + 5, 777), (HISTORY + 6, HISTORY + 6, None)
    ]
    again = sequencer.match({HISTORY + 5: 777, HISTORY + 6: 900})
    assert [(p.seq, p.arrival_us) for p in again] == [(HISTORY + 6, 900)]


@pytest.mark.parametrize("ext_id", [0, 15])
def test_ids_outside_the_one_byte_form_are_refused(ext_id: int) -> None:
    with pytest.raises(ValueError):
        TransportSequencer(ext_id)
