"""A minimum playout delay for a subscriber on a lossy link with a long round trip
(media.playout_delay): when it is asked for, the bytes of the header element, and a real
aiortc subscriber behind a shaping relay receiving it."""

from __future__ import annotations

import re
import struct
import time
from collections.abc import Callable

import pytest
from aiortc.rtp import unpack_header_extensions

from media.engine import MediaEngine
from media.packets import RTP_HEADER, payload_bounds
from media.playout_delay import (
    CEILING_S,
    MARGIN_S,
    MAX_UNITS,
    PLAYOUT_DELAY_URI,
    PlayoutFloor,
    element_value,
)
from media.transport_seq import PLAYOUT_HEADER_BYTES, TransportSequencer
from media.twcc import transport_sequence
from tests.media.conftest import VP8_OPUS_20S
from tests.media.peers import Peer
from tests.media.shaping import Shape, UdpRelay
from tests.media.test_congestion import offer_transport_cc
from tests.polling import eventually

PLAYOUT_ID = 6
RTT_S = 0.15


def test_asked_for_on_loss_with_a_long_round_trip_and_given_back() -> None:
    floor = PlayoutFloor()
    assert floor.on_report(0.0, RTT_S) == 0
    reports = [floor.on_report(0.03, RTT_S) for _ in range(10)]
    assert reports[0] == 0  # one lossy report is not yet a lossy link
    assert reports[-1] == int((RTT_S + MARGIN_S) * 1000)
    assert floor.on_report(0.0, RTT_S) > 0  # hysteresis: one clean report keeps it
    assert [floor.on_report(0.0, RTT_S) for _ in range(15)][-1] == 0


def test_not_asked_for_on_a_short_round_trip_and_never_above_the_ceiling() -> None:
    floor = PlayoutFloor()
    assert [floor.on_report(0.05, 0.03) for _ in range(10)][-1] == 0
    assert [floor.on_report(0.05, 2.0) for _ in range(10)][-1] == int(CEILING_S * 1000)


def test_the_element_carries_min_and_an_open_max_after_the_number() -> None:
    sequencer = TransportSequencer(ext_id=5)
    sequencer.negotiate_playout(PLAYOUT_ID)
    sequencer.next_seq = 0x1234
    sequencer.set_playout(element_value(253))  # rounded up to 260 ms
    payload = bytes(range(100))
    buf = bytearray(PLAYOUT_HEADER_BYTES + len(payload))
    head = sequencer.pack_header(buf, 0x80, 0x80 | 96, 7, 90_000, 0x11223344)
    assert head == sequencer.header_bytes == 24
    buf[head:] = payload
    data = bytes(buf)
    assert RTP_HEADER.unpack_from(data) == (0x90, 0x80 | 96, 7, 90_000, 0x11223344)
    assert dict(_elements(data)) == {5: b"\x12\x34", PLAYOUT_ID: bytes([0x01, 0xAF, 0xFF])}
    assert (26 << 12) | MAX_UNITS == element_value(253)
    assert transport_sequence(data, 5) == 0x1234
    start, end = payload_bounds(data)
    assert data[start:end] == payload


def _elements(data: bytes) -> list[tuple[int, bytes]]:
    """The RFC 8285 header extension elements of an RTP packet."""
    if not data[0] & 0x10:
        return []
    at = 12 + 4 * (data[0] & 0x0F)
    profile, words = struct.unpack_from("!HH", data, at)
    return unpack_header_extensions(profile, data[at + 4 : at + 4 + 4 * words])


def offer_playout_delay(sdp: str) -> str:
    """Offer transport-wide numbers everywhere and the playout-delay extension on video (as
    Chromium does; aiortc has neither)."""
    sections = offer_transport_cc(sdp).split("\r\nm=")
    return "\r\nm=".join(
        re.sub(r"\r\na=mid:", f"\r\na=extmap:{PLAYOUT_ID} {PLAYOUT_DELAY_URI}\r\na=mid:", s)
        if s.startswith("video") else s
        for s in sections
    )


async def test_a_lossy_long_link_gets_a_playout_delay_of_a_round_trip_and_margin(
    make_peer: Callable[..., Peer], engine: MediaEngine
) -> None:
    relay = UdpRelay(down=Shape(loss=0.05, delay_s=RTT_S / 2), up=Shape(delay_s=RTT_S / 2))
    await relay.start()
    try:
        a = make_peer("a")
        a.publish_file(VP8_OPUS_20S, loop=True)  # a slow machine must not run out of clip
        b = make_peer("b")
        b.publish_file(VP8_OPUS_20S)
        b.munge = offer_playout_delay
        b.relay = relay
        minimums: list[int] = []
        repairs: list[tuple[int, int]] = []
        """(ssrc, original sequence number) of each RTX packet b received."""

        def keep(data: bytes) -> bool:  # every packet still reaches b's receivers
            for ext_id, value in _elements(data):
                if ext_id == PLAYOUT_ID:
                    minimums.append(int.from_bytes(value, "big") >> 12)
            if data[1] & 0x7F in rtx_types:
                start, end = payload_bounds(data)
                if end - start >= 2:
                    osn = data[start] << 8 | data[start + 1]
                    repairs.append((RTP_HEADER.unpack_from(data)[4], osn))
            return True

        await a.connect()
        await b.connect()
        rtx_types = {int(pt) for pt in
                     re.findall(r"a=rtpmap:(\d+) rtx/", b.pc.remoteDescription.sdp)}
        b.filter_incoming(keep)
        started = time.monotonic()

        def asked() -> int:
            video = [s for s in engine.stats(a.room_id)["b"]["subscribed"]
                     if s["kind"] == "video"]
            return max((s["min_playout_delay_ms"] for s in video), default=0)

        assert await eventually(lambda: asked() > 0 and any(minimums), 40), (
            f"after {time.monotonic() - started:.0f} s: stats {asked()} ms,"
            f" {len(minimums)} elements seen"
        )
        # one round trip (150 ms, plus what the loaded loopback adds) and the margin
        assert RTT_S + MARGIN_S <= asked() / 1000 <= CEILING_S
        assert max(minimums) * 10 >= asked()
        # meanwhile each repair is sent twice: some reach b twice (both copies survived)
        repaired_before = len(repairs)
        assert await eventually(
            lambda: len(repairs[repaired_before:]) - len(set(repairs[repaired_before:])) >= 3, 30
        ), f"{len(repairs)} repairs, none twice"
        # a's link is clean: nothing asked of a
        a_video = [s for s in engine.stats(a.room_id)["a"]["subscribed"] if s["kind"] == "video"]
        assert all(s["min_playout_delay_ms"] == 0 for s in a_video)
    finally:
        relay.close()


@pytest.mark.parametrize("ext_id", [0, 15])
def test_playout_ids_outside_the_one_byte_form_are_refused(ext_id: int) -> None:
    with pytest.raises(ValueError):
        TransportSequencer(ext_id=1).negotiate_playout(ext_id)
