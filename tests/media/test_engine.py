"""Session behaviour of the SFU: rejoin, leak-free cycles, renegotiation, errors, stats."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import Callable

import pytest
from aiortc import RTCPeerConnection

from media.engine import MediaEngine
from media.errors import MediaError
from tests.media.conftest import VP8_OPUS_20S
from tests.media.peers import Peer
from tests.polling import eventually
from tests.recording.helpers import publish
from tests.recording.sources import PacedClock, PacedSource, load_packets


def _publish_lasting(peer: Peer, seconds: float) -> dict[str, PacedSource]:
    """The 20 s clip repeated to ``seconds`` and paced in real time: media that outlasts the
    test however long a busy machine makes it (the clip alone ran out mid-test)."""
    clock = PacedClock()
    sources = {
        kind: PacedSource(kind, load_packets(VP8_OPUS_20S, kind, repeat_to_s=seconds), clock)
        for kind in ("video", "audio")
    }
    publish(peer, *sources.values())
    return sources


async def test_rejoin_after_abrupt_drop_media_flows_both_ways_within_3s(
    engine: MediaEngine, make_peer: Callable[..., Peer]
) -> None:
    a = make_peer("caller")
    a.publish_file(VP8_OPUS_20S)
    await a.connect()
    b = make_peer("astrologer")
    b.publish_file(VP8_OPUS_20S)
    await b.connect()
    assert await eventually(
        lambda: len(a.received["video"]) > 5 and len(b.received["video"]) > 5, 30
    )

    # Wi-Fi -> mobile: the caller's peer connection dies without a goodbye
    await a.pc.close()
    await engine.leave(a.room_id, "caller")
    before = len(b.received["video"])
    a2 = make_peer("caller")
    a2.publish_file(VP8_OPUS_20S)
    t0 = await a2.connect()
    ok = await eventually(
        lambda: (
            len(a2.received["video"]) > 0
            and len(a2.received["audio"]) > 0
            and len(b.received["video"]) > before + 2
        ),
        30,
    )
    elapsed = time.monotonic() - t0
    assert ok, f"media did not flow both ways after rejoin ({elapsed:.2f}s)"
    assert b.offers_answered == 0  # no action from the other party, not even renegotiation
    print(f"media both ways {elapsed:.2f} s after the rejoin")
    # Under 3 s on a quiet machine; the bound leaves room for two busy cores while still
    # catching a rejoin that waits for the dead connection's ICE consent to lapse (30 s).
    assert elapsed < 15, elapsed


async def test_twenty_join_leave_cycles_leave_nothing_behind(
    engine: MediaEngine, make_peer: Callable[..., Peer]
) -> None:
    pub = make_peer("astrologer")
    sent = _publish_lasting(pub, 600)
    await pub.connect()
    # the baseline is taken with the publisher streaming (its media threads started)
    assert await eventually(
        lambda: all(
            p["packets_received"] > 0 for p in engine.stats(pub.room_id)["astrologer"]["published"]
        )
        and len(sent["video"].sent) > 0
        and len(sent["audio"].sent) > 0
    ), engine.stats(pub.room_id)
    gc.collect()
    threads = threading.active_count()
    tasks = len(asyncio.all_tasks())
    pcs = sum(isinstance(o, RTCPeerConnection) for o in gc.get_objects())

    for i in range(20):
        peer = make_peer("caller")
        peer.receive("video", "audio")
        await peer.connect()
        videos = peer.received["video"]
        ok = await eventually(lambda: len(videos) > 0, 30)  # noqa: B023
        assert ok, f"cycle {i}: {engine.stats(peer.room_id)['caller']['subscribed']}"
        await engine.leave(peer.room_id, "caller")
        await peer.close()

    def settled() -> bool:  # the last peer's teardown runs on after leave() returns
        return (
            set(engine.stats(pub.room_id)) == {"astrologer"}
            and threading.active_count() <= threads
            and len(asyncio.all_tasks()) <= tasks + 2
        )

    await eventually(settled)
    gc.collect()
    assert set(engine.stats(pub.room_id)) == {"astrologer"}
    assert threading.active_count() <= threads
    leftover = sorted(t.get_coro().__qualname__ for t in asyncio.all_tasks())  # type: ignore[union-attr]
    assert len(leftover) <= tasks + 2, leftover
    pcs_after = sum(isinstance(o, RTCPeerConnection) for o in gc.get_objects())
    # the 20 client peers are still referenced by the fixture; the server keeps none of its own
    assert pcs_after <= pcs + 20
    assert len(engine._rooms[pub.room_id].participants["astrologer"].uptracks) == 2
    for up in engine._rooms[pub.room_id].participants["astrologer"].uptracks.values():
        assert len(up.downtracks) == 0


async def test_a_voice_room_takes_no_video(
    engine: MediaEngine, make_peer: Callable[..., Peer]
) -> None:
    """A voice consultation's room: both clients offer audio and video; only audio flows."""
    a, b = make_peer("caller"), make_peer("astrologer")
    for peer in (a, b):
        peer.publish_file(VP8_OPUS_20S)
        await peer.connect(kinds=("audio",))
    assert await eventually(
        lambda: len(a.received["audio"]) > 20 and len(b.received["audio"]) > 20
    ), engine.stats(a.room_id)
    for peer in (a, b):
        video = [t for t in peer.pc.getTransceivers() if t.kind == "video"]
        assert video and all(t.currentDirection == "inactive" for t in video)
        assert not peer.received["video"]
    for pid, s in engine.stats(a.room_id).items():
        assert [p["kind"] for p in s["published"]] == ["audio"], pid
        assert {d["kind"] for d in s["subscribed"]} == {"audio"}, pid
        assert s["kinds"] == ["audio"]


async def test_observer_gets_video_through_server_offer(
    engine: MediaEngine, make_peer: Callable[..., Peer]
) -> None:
    pub = make_peer("astrologer")
    pub.publish_file(VP8_OPUS_20S)
    await pub.connect()
    admin = make_peer("admin")
    admin.receive("audio")  # offers one m-section only: video needs a server offer
    await admin.connect(can_publish=False)
    assert await eventually(lambda: admin.offers_answered == 1, 30)
    assert await eventually(lambda: len(admin.received["video"]) > 0, 30)
    assert await eventually(lambda: len(admin.received["audio"]) > 0, 30)
    stats = engine.stats(pub.room_id)
    assert stats["admin"]["published"] == []
    assert stats["admin"]["can_publish"] is False


async def test_observer_of_two_publishers_gets_video_on_its_own_and_server_added_mlines(
    engine: MediaEngine, make_peer: Callable[..., Peer]
) -> None:
    for pid in ("caller", "astrologer"):
        peer = make_peer(pid)
        peer.publish_file(VP8_OPUS_20S)
        await peer.connect()
    admin = make_peer("admin")
    admin.receive("audio", "video")  # one slot per kind; the second publisher's need a server offer
    await admin.connect(can_publish=False)
    assert await eventually(lambda: admin.offers_answered == 1, 30)
    videos = [str(t.mid) for t in admin.pc.getTransceivers() if t.kind == "video"]
    assert len(videos) == 2
    ok = await eventually(lambda: all(len(admin.by_mid.get(m, [])) >= 30 for m in videos), 30)
    assert ok, {m: len(admin.by_mid.get(m, [])) for m in videos}
    subscribed = engine.stats(admin.room_id)["admin"]["subscribed"]
    assert all(s["send_errors"] == 0 and s["active"] for s in subscribed), subscribed


async def test_voice_to_video_upgrade_mid_session(
    engine: MediaEngine, make_peer: Callable[..., Peer]
) -> None:
    a = make_peer("caller")
    a.publish_file(VP8_OPUS_20S, kinds=("audio",))
    await a.connect()
    b = make_peer("astrologer")
    b.publish_file(VP8_OPUS_20S, kinds=("audio",))
    await b.connect()
    assert await eventually(
        lambda: len(a.received["audio"]) > 5 and len(b.received["audio"]) > 5, 30
    )
    assert not b.received["video"]

    a.publish_file(VP8_OPUS_20S, kinds=("video",))  # the caller turns the camera on
    await a.connect(join=False)  # client-initiated renegotiation (RFC 9429 §5.2.2)
    assert await eventually(lambda: b.offers_answered == 1, 30), "astrologer got no server offer"
    assert await eventually(lambda: len(b.received["video"]) > 0, 30)
    audio_before = len(b.received["audio"])
    assert await eventually(lambda: len(b.received["audio"]) > audio_before + 10, 30)


async def test_glare_client_offer_while_server_offer_outstanding(
    engine: MediaEngine, make_peer: Callable[..., Peer], switchboard: object
) -> None:
    pub = make_peer("astrologer")
    pub.publish_file(VP8_OPUS_20S)
    await pub.connect()
    sub = make_peer("caller")
    sub.on_signal = lambda message: None  # type: ignore[method-assign]  # sits on the offer
    sub.receive("audio")
    await sub.connect()
    participant = engine._rooms[sub.room_id].participants["caller"]
    assert await eventually(lambda: participant.pc.signalingState == "have-local-offer", 30)
    other = RTCPeerConnection()
    other.addTransceiver("video", direction="recvonly")
    await other.setLocalDescription(await other.createOffer())
    with pytest.raises(MediaError) as err:
        await engine.handle_offer(sub.room_id, "caller", other.localDescription.sdp)
    assert err.value.code == "GLARE"
    await other.close()


@pytest.mark.parametrize(
    "sdp",
    ["", "hello", "v=0\r\n", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 X 96\r\n"],
)
async def test_bad_sdp_is_a_media_error_and_harms_nothing(
    engine: MediaEngine, make_peer: Callable[..., Peer], sdp: str
) -> None:
    await engine.join("r-bad", "p1")
    with pytest.raises(MediaError) as err:
        await engine.handle_offer("r-bad", "p1", sdp)
    assert err.value.code == "BAD_SDP"
    with pytest.raises(MediaError) as err2:
        await engine.handle_answer("r-bad", "p1", sdp)
    assert err2.value.code in ("BAD_SDP", "NO_OFFER")
    with pytest.raises(MediaError) as err3:
        await engine.add_ice_candidate("r-bad", "p1", {"candidate": "candidate:garbage"})
    assert err3.value.code in ("BAD_CANDIDATE", "NO_OFFER")
    # the same participant can still negotiate
    peer = make_peer("p1", room_id="r-bad")
    peer.receive("video")
    await peer.connect(join=False)
    assert await eventually(lambda: peer.pc.connectionState == "connected", 30)


async def test_not_joined_is_an_error(engine: MediaEngine) -> None:
    with pytest.raises(MediaError) as err:
        await engine.handle_offer("nowhere", "nobody", "v=0\r\n")
    assert err.value.code == "NOT_JOINED"


async def test_stats_are_sensible(engine: MediaEngine, make_peer: Callable[..., Peer]) -> None:
    a = make_peer("caller")
    _publish_lasting(a, 120)
    await a.connect()
    b = make_peer("astrologer")
    _publish_lasting(b, 120)
    await b.connect()

    def problems() -> list[str]:
        """What is not (yet) sensible: rates need a few seconds of media, more under load."""
        stats = engine.stats(a.room_id)
        if set(stats) != {"caller", "astrologer"}:
            return [f"participants {sorted(stats)}"]
        found = []
        for pid, s in stats.items():
            video_in = next((p for p in s["published"] if p["kind"] == "video"), None)
            video_out = next((d for d in s["subscribed"] if d["kind"] == "video"), None)
            checks = {
                "connected": s["state"] == "connected",
                "tracks": video_in is not None and video_out is not None,
                "bitrate in": video_in is not None
                and 100_000 < video_in["bitrate_bps"] < 2_000_000,
                "no loss": video_in is not None
                and video_in["packets_lost"] == 0 == video_in["fraction_lost"],
                "jitter": video_in is not None and 0 <= video_in["jitter_s"] < 0.1,
                "active": video_out is not None
                and video_out["active"]
                and video_out["track_id"] is not None,
                "bitrate out": video_out is not None
                and 100_000 < video_out["bitrate_bps"] < 2_000_000,
                "frames": video_out is not None and video_out["frames_forwarded"] > 30,
                "rtt": s["rtt_s"] is not None and 0 <= s["rtt_s"] < 0.5,
                "pli": s["keyframe_requests_sent"] >= 1,
                "packets": s["packets_forwarded"] > s["frames_forwarded"],
            }
            found += [f"{pid}: {name} ({s})" for name, ok in checks.items() if not ok]
        return found

    await eventually(lambda: not problems(), 30)
    assert not problems(), problems()
    assert engine.stats("no-such-room") == {}


async def test_the_first_media_between_two_parties_is_reported_once(
    engine: MediaEngine, make_peer: Callable[..., Peer]
) -> None:
    """Billing learns that a call carried media (`bind_media_flowing`): not while the astrologer
    talks to an empty room, then once a caller who only listens is connected, and only once."""
    reported: list[str] = []

    async def flowing(room_id: str) -> None:
        reported.append(room_id)

    engine.bind_media_flowing(flowing)
    astro = make_peer("astrologer")
    astro.publish_file(VP8_OPUS_20S)
    await astro.connect()

    def received_from_astro() -> int:
        published = engine.stats(astro.room_id).get("astrologer", {}).get("published", [])
        return sum(p["packets_received"] for p in published)

    assert await eventually(lambda: received_from_astro() > 20)
    assert reported == []  # media reached the SFU, but nobody is there to receive it
    caller = make_peer("caller")
    caller.receive("audio", "video")  # a silent caller still hears the astrologer
    await caller.connect()
    assert await eventually(lambda: len(caller.received["audio"]) > 5)
    assert reported == [astro.room_id]
    observer = make_peer("observer")
    observer.receive("audio")
    await observer.connect(can_publish=False)
    assert await eventually(lambda: len(observer.received["audio"]) > 5)
    assert reported == [astro.room_id]  # once per room
