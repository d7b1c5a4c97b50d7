"""Keyframe requests, NACK recovery and isolation of a slow subscriber (RFC 4585)."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

from aiortc.rtp import RTCP_PSFB_PLI, RtcpPsfbPacket

from media.engine import MediaEngine
from tests.media.conftest import VP8_OPUS_20S
from tests.media.peers import Peer
from tests.polling import eventually


def _plis(log: list[tuple[float, object]]) -> list[float]:
    return [t for t, p in log if isinstance(p, RtcpPsfbPacket) and p.fmt == RTCP_PSFB_PLI]


def _video_pt_ssrc(peer: Peer) -> tuple[int, int]:
    """Payload type and SSRC the SFU uses toward ``peer`` for video (from its remote SDP)."""
    t = next(t for t in peer.pc.getTransceivers() if t.kind == "video")
    codec = next(c for c in t._codecs if c.name.lower() != "rtx")
    media = next(m for m in peer.pc.remoteDescription.sdp.split("m=")[1:] if m.startswith("video"))
    ssrc = int(media.split("a=ssrc:")[1].split()[0])
    return codec.payloadType or 0, ssrc


async def test_new_subscriber_pli_reaches_publisher_rate_limited(
    engine: MediaEngine, make_peer: Callable[..., Peer]
) -> None:
    pub = make_peer("astrologer")
    pub.publish_file(VP8_OPUS_20S)
    await pub.connect()
    log = pub.record_rtcp_at_sender("video")
    assert await eventually(
        lambda: engine.stats(pub.room_id)["astrologer"]["published"][0]["packets_received"] > 0, 30
    )
    sub = make_peer("caller")
    sub.receive("video")
    await sub.connect()
    assert await eventually(lambda: len(_plis(log)) >= 1), "no PLI reached the publisher"

    # a subscriber hammering PLIs is throttled to one per pli_interval_s
    _, media_ssrc = _video_pt_ssrc(sub)
    receiver = next(t.receiver for t in sub.pc.getTransceivers() if t.kind == "video")
    burst_start = time.monotonic()
    received_before = engine.stats(pub.room_id)["caller"]["keyframe_requests_received"]
    for _ in range(20):
        await receiver._send_rtcp_pli(media_ssrc)
        await asyncio.sleep(0.05)  # pacing the burst over a second, not waiting for anything

    def all_delivered() -> bool:
        stats = engine.stats(pub.room_id)
        return (
            stats["caller"]["keyframe_requests_received"] >= received_before + 20
            and stats["astrologer"]["keyframe_requests_sent"] == len(_plis(log))
        )

    assert await eventually(all_delivered), engine.stats(pub.room_id)
    window = time.monotonic() - burst_start
    in_window = [t for t in _plis(log) if t >= burst_start]
    interval = engine.settings.pli_interval_s
    assert 1 <= len(in_window) <= math.ceil(window / interval) + 1, (len(in_window), window)


async def test_nacks_answered_from_history(
    engine: MediaEngine, make_peer: Callable[..., Peer]
) -> None:
    pub = make_peer("astrologer")
    pub.publish_file(VP8_OPUS_20S)
    await pub.connect()
    sub = make_peer("caller")
    sub.receive("video")
    await sub.connect()
    pt, ssrc = _video_pt_ssrc(sub)
    dropped: list[int] = []

    def keep(data: bytes) -> bool:
        if data[1] & 0x7F == pt and int.from_bytes(data[8:12], "big") == ssrc:
            seq = int.from_bytes(data[2:4], "big")
            if seq % 5 == 0 and seq not in dropped and len(dropped) < 40:
                dropped.append(seq)  # each packet is lost once; its retransmission passes
                return False
        return True

    sub.filter_incoming(keep)

    def repaired() -> bool:
        out = engine.stats(pub.room_id)["caller"]["subscribed"][0]
        return (
            len(dropped) >= 10
            and out["nacks_received"] > 0
            and out["packets_retransmitted"] >= 0.8 * len(dropped)
        )

    await eventually(repaired, 30)
    out = engine.stats(pub.room_id)["caller"]["subscribed"][0]
    assert len(dropped) >= 10
    assert out["nacks_received"] > 0
    assert out["packets_retransmitted"] >= 0.8 * len(dropped), (out, len(dropped))
    sent = [f.data for f in pub.published["video"].sent]
    got = sub.received["video"]
    assert got and all(f.data in sent for f in got)
    window = sent.index(got[-1].data) - sent.index(got[0].data) + 1
    assert len(got) >= 0.95 * window, (len(got), window)  # losses were repaired


async def test_slow_subscriber_does_not_hold_others_back(
    engine: MediaEngine, make_peer: Callable[..., Peer]
) -> None:
    pub = make_peer("astrologer")
    pub.publish_file(VP8_OPUS_20S)
    await pub.connect()
    fast = make_peer("caller")
    fast.receive("video")
    await fast.connect()
    slow = make_peer("admin")
    slow.receive("video")
    await slow.connect(can_publish=False)
    assert await eventually(
        lambda: len(slow.received["video"]) > 5 and len(fast.received["video"]) > 5, 30
    )

    stalled = {"on": True}
    slow.filter_incoming(lambda data: not stalled["on"])  # its link goes dark
    fast_before = len(fast.received["video"])
    sent_before = len(pub.published["video"].sent)
    # Two seconds of the publisher's video while the slow link is dark (an observation window,
    # not a wait): the fast subscriber must get it, frames still in flight at the end included.
    await asyncio.sleep(2.0)
    sent_frames = len(pub.published["video"].sent) - sent_before
    assert sent_frames > 10, sent_frames

    def fast_frames() -> int:
        return len(fast.received["video"]) - fast_before

    await eventually(lambda: fast_frames() >= 0.95 * sent_frames - 2)
    assert fast_frames() >= 0.95 * sent_frames - 2, (fast_frames(), sent_frames)

    stalled["on"] = False
    slow_before = len(slow.received["video"])
    resumed = await eventually(lambda: len(slow.received["video"]) > slow_before + 3)
    assert resumed, "the slow subscriber did not recover at the next keyframe"
    room = engine._rooms[pub.room_id]
    for up in room.participants["astrologer"].uptracks.values():
        assert len(up._history) == engine.settings.nack_history  # bounded, fixed memory
