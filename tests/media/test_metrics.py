"""The SFU's collector (``media.metrics``): NACKs and retransmissions a subscriber's losses cause,
and counters that keep what departed participants forwarded (Prometheus counters never fall)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, generate_latest

from media.engine import MediaEngine
from media.metrics import MediaCollector
from tests.media.conftest import VP8_OPUS_20S
from tests.media.peers import Peer
from tests.media.test_keyframes import _video_pt_ssrc
from tests.polling import eventually
from tests.scrape import Scrape

NODE = "node-a"


def _scrape(registry: CollectorRegistry) -> Scrape:
    return Scrape.parse(generate_latest(registry).decode())


async def test_nacks_counted_and_totals_survive_the_participants(
    engine: MediaEngine, make_peer: Callable[..., Peer]
) -> None:
    registry = CollectorRegistry()
    registry.register(MediaCollector(engine, NODE))
    pub = make_peer("astrologer")
    pub.publish_file(VP8_OPUS_20S)
    await pub.connect()
    sub = make_peer("caller")
    sub.receive("video")
    await sub.connect()
    pt, ssrc = _video_pt_ssrc(sub)
    dropped: list[int] = []

    def keep(data: bytes) -> bool:  # every 5th video packet is lost once on the way to `sub`
        if data[1] & 0x7F == pt and int.from_bytes(data[8:12], "big") == ssrc:
            seq = int.from_bytes(data[2:4], "big")
            if seq % 5 == 0 and seq not in dropped and len(dropped) < 40:
                dropped.append(seq)
                return False
        return True

    sub.filter_incoming(keep)

    def repaired() -> bool:
        now = _scrape(registry)
        return (len(dropped) >= 10
                and now.value("kundlinow_media_nacks_total", node=NODE, kind="video",
                              direction="received") > 0
                and now.value("kundlinow_media_retransmitted_packets_total", node=NODE,
                              kind="video") >= 0.8 * len(dropped))

    assert await eventually(repaired, 30), (dropped, _scrape(registry).samples)
    live = _scrape(registry)
    stats = engine.stats(pub.room_id)
    # the same figures as the admin media stats: one subscriber, one published track
    forwarded = stats["caller"]["subscribed"][0]["packets_forwarded"]
    assert live.value("kundlinow_media_forwarded_packets_total", node=NODE, kind="video") >= (
        forwarded
    )
    assert live.value("kundlinow_media_participants", node=NODE) == 2
    assert live.has("kundlinow_media_participant_bitrate_in_bps", node=NODE,
                    room=pub.room_id, participant="astrologer")
    caller = {"node": NODE, "room": pub.room_id, "participant": "caller"}
    # the caller's downlink: an estimate, nothing paused, the repairs it was sent
    assert live.value("kundlinow_media_participant_estimated_bps", **caller) > 0
    assert live.value("kundlinow_media_participant_target_bps", **caller) > 0
    assert live.has("kundlinow_media_participant_video_paused", **caller)
    assert live.value("kundlinow_media_participant_video_paused", **caller) == 0
    assert 0 < live.value("kundlinow_media_participant_retransmission_ratio", **caller) <= 1
    # loopback is not a distant link: no playout delay asked
    assert live.value("kundlinow_media_participant_min_playout_delay_seconds", **caller) == 0

    await engine.leave(pub.room_id, "caller")
    await engine.leave(pub.room_id, "astrologer")
    gone = _scrape(registry)
    assert gone.value("kundlinow_media_rooms", node=NODE) == 0
    assert not gone.has("kundlinow_media_participant_bitrate_in_bps")
    for name, labels in (
        ("kundlinow_media_forwarded_packets_total", {"kind": "video"}),
        ("kundlinow_media_forwarded_bytes_total", {"kind": "video"}),
        ("kundlinow_media_received_packets_total", {"kind": "audio"}),
        ("kundlinow_media_nacks_total", {"kind": "video", "direction": "received"}),
        ("kundlinow_media_retransmitted_packets_total", {"kind": "video"}),
    ):
        assert gone.value(name, node=NODE, **labels) >= live.value(name, node=NODE, **labels) > 0
