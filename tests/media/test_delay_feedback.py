"""The delay-based downlink estimate end to end with real aiortc peers: the subscriber ("b")
negotiates transport-cc, reaches the SFU through a shaping relay (tests/media/shaping.py) and,
standing in for a browser, reports the arrival of every numbered packet in transport-wide
feedback (the SFU's own ``TransportFeedbackRecorder``, every 100 ms). The publisher ("a")
sends a ~1 Mbit/s clip it cannot adapt; what is checked is the SFU's estimate of b's downlink,
its detector state in the admin stats and on /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from media.config import MediaSettings
from media.congestion import CongestionSettings
from media.engine import MediaEngine
from media.metrics import MediaCollector
from media.twcc import TransportFeedbackRecorder, transport_sequence
from tests.media.peers import Peer
from tests.media.shaping import Shape, UdpRelay
from tests.media.test_congestion import TCC_ID, big_clip, offer_transport_cc
from tests.polling import eventually
from tests.scrape import Scrape

__all__ = ["big_clip"]  # the module-scoped fixture, shared with test_congestion


@pytest.fixture
def media_settings() -> MediaSettings:
    return MediaSettings(ice_host_addresses=("127.0.0.1",), pli_interval_s=0.3,
                         congestion=CongestionSettings(enabled=True))


@contextlib.asynccontextmanager
async def reporting(peer: Peer) -> AsyncIterator[list[int]]:
    """Make ``peer`` send transport-wide feedback about what it receives, as a browser does;
    yields the list of transport-wide numbers it saw."""
    dtls: Any = peer.pc.getTransceivers()[0].receiver.transport
    recorder = TransportFeedbackRecorder()
    seen: list[int] = []
    original = dtls._handle_rtp_data

    async def handle(data: bytes, arrival_time_ms: int) -> None:
        seq = transport_sequence(data, TCC_ID)
        if seq is not None:
            seen.append(seq)
            recorder.record(seq, time.monotonic_ns() // 1000)
        await original(data, arrival_time_ms=arrival_time_ms)

    async def report() -> None:
        while True:
            await asyncio.sleep(0.1)  # the receiver's feedback interval, not a wait
            for packet in recorder.feedback(1, 2):
                await dtls._send_rtp(packet)

    dtls._handle_rtp_data = handle
    task = asyncio.ensure_future(report())
    try:
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _call(make_peer: Callable[..., Peer], clip: str, relay: UdpRelay) -> tuple[Peer, Peer]:
    await relay.start()
    a = make_peer("a")
    a.publish_file(clip)
    await a.connect()
    b = make_peer("b")
    b.receive("audio", "video")
    b.munge = offer_transport_cc
    b.relay = relay
    await b.connect()
    return a, b


async def test_capped_downlink_is_estimated_from_transport_feedback(
    make_peer: Callable[..., Peer], engine: MediaEngine, big_clip: str
) -> None:
    relay = UdpRelay(down=Shape(rate_bps=400_000))
    a, b = await _call(make_peer, big_clip, relay)
    registry = CollectorRegistry()
    registry.register(MediaCollector(engine, "node-a"))
    try:
        async with reporting(b) as seen:
            def stats() -> dict[str, Any]:
                return dict(engine.stats(a.room_id)["b"])

            assert await eventually(lambda: stats()["transport_cc_feedback_received"] > 20, 30), (
                f"no feedback used: {len(seen)} numbered packets seen by b"
            )
            assert await eventually(
                lambda: (stats()["delay_estimated_bps"] or 10**9) < 500_000, 20
            ), {k: v for k, v in stats().items() if k not in ("published", "subscribed")}
            now = stats()
            assert now["delay_detector"] in ("normal", "overusing", "underusing")
            assert now["estimated_bps"] <= now["delay_estimated_bps"]
            assert now["estimated_bps"] == min(now["loss_estimated_bps"],
                                               now["delay_estimated_bps"])
            scrape = Scrape.parse(generate_latest(registry).decode())
            labels = {"node": "node-a", "room": a.room_id, "participant": "b"}
            assert scrape.value("kundlinow_media_participant_delay_estimated_bps",
                                **labels) < 500_000
            assert scrape.has("kundlinow_media_participant_delay_detector", **labels)
            # the publisher has no transport-cc downlink: no delay-based figures for it
            assert not scrape.has("kundlinow_media_participant_delay_estimated_bps",
                                  node="node-a", room=a.room_id, participant="a")
    finally:
        relay.close()


async def test_clean_downlink_with_transport_feedback_keeps_the_estimate(
    make_peer: Callable[..., Peer], engine: MediaEngine, big_clip: str
) -> None:
    relay = UdpRelay()
    a, b = await _call(make_peer, big_clip, relay)
    try:
        async with reporting(b):
            def fed() -> bool:
                return int(engine.stats(a.room_id)["b"]["transport_cc_feedback_received"]) > 50

            assert await eventually(fed, 30)
            stats = engine.stats(a.room_id)["b"]
            assert stats["video_paused"] is False
            # the start is ~1.9 Mbit/s and the clip ~1 Mbit/s. On a quiet machine nothing
            # moves; with both cores loaded, a stall of this one event loop (SFU and both
            # peers) can look like one over-use (0.85 x the throughput): tolerated, a trend
            # towards the floor is not
            assert stats["delay_estimated_bps"] >= 700_000, stats["delay_estimated_bps"]
            assert stats["estimated_bps"] >= 700_000
    finally:
        relay.close()
