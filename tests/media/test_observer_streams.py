"""An observer (an admin watching a consultation) receives both parties' tracks and can tell
them apart: every track reaches it on an m-section the server added, whose msid names the
publisher as the stream (RFC 8830 §2). That m-section stays the publisher's: a party who
rejoins gets their own slots back, never the other party's.

The observer offers what the web client offers: an ``inactive`` m-section per kind, only to
bring up the transport (ICE, DTLS) for the server's offer.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from media.engine import MediaEngine
from tests.media.conftest import VP8_OPUS, VP8_OPUS_20S
from tests.media.peers import Frame, Peer, Switchboard
from tests.polling import eventually

PARTIES = ("caller", "astrologer")


def stream_of_mid(sdp: str) -> dict[str, str]:
    """``{mid: msid stream id}`` of the m-sections that send a track."""
    out: dict[str, str] = {}
    for section in sdp.split("\r\nm=")[1:]:
        mid = re.search(r"a=mid:(\S+)", section)
        msid = re.search(r"a=msid:(\S+) ", section)
        if mid and msid and re.search(r"a=(sendonly|sendrecv)\r\n", section):
            out[mid[1]] = msid[1]
    return out


def sent_by(peer: Peer, kind: str) -> set[bytes]:
    return {f.data for f in peer.published[kind].sent}


def only_from(got: list[Frame], peer: Peer, kind: str) -> bool:
    """Some frames arrived on the m-section, and each is one ``peer`` sent."""
    sent = sent_by(peer, kind)
    return bool(got) and all(f.data in sent for f in got)


def kind_of(observer: Peer, mid: str) -> str:
    return next(t.kind for t in observer.pc.getTransceivers() if t.mid == mid)


async def _observe(
    make_peer: Callable[..., Peer], switchboard: Switchboard
) -> tuple[Peer, dict[str, str]]:
    observer = make_peer("observer")
    for kind in ("audio", "video"):
        observer.pc.addTransceiver(kind, direction="inactive")
    await observer.connect(can_publish=False)
    assert await eventually(lambda: observer.offers_answered >= 1, 10)
    server_offer = next(
        m["data"]["sdp"] for _r, p, m in switchboard.messages
        if p == "observer" and m["type"] == "call_offer"
    )
    return observer, stream_of_mid(server_offer)


def late(observer: Peer, mid: str, before: dict[str, int]) -> list[Frame]:
    return observer.by_mid.get(mid, [])[before.get(mid, 0):]


async def test_observer_tells_the_parties_tracks_apart(
    engine: MediaEngine, make_peer: Callable[..., Peer], switchboard: Switchboard
) -> None:
    # Different video clips, so a frame says who sent it; the astrologer sends no audio, so
    # the one audio track is the caller's.
    parties = {"caller": make_peer("caller"), "astrologer": make_peer("astrologer")}
    parties["caller"].publish_file(VP8_OPUS_20S)
    parties["astrologer"].publish_file(VP8_OPUS, kinds=("video",))
    for party in parties.values():
        await party.connect()
    observer, streams = await _observe(make_peer, switchboard)

    assert sorted(streams.values()) == ["astrologer", "caller", "caller"], streams
    assert sorted((streams[mid], kind_of(observer, mid)) for mid in streams) == [
        ("astrologer", "video"), ("caller", "audio"), ("caller", "video"),
    ]

    def each_from_its_publisher() -> bool:
        return all(
            only_from(observer.by_mid.get(mid, []), parties[who], kind_of(observer, mid))
            for mid, who in streams.items()
        )

    assert await eventually(each_from_its_publisher, 10)


async def test_a_rejoining_party_gets_its_own_slots_back(
    engine: MediaEngine, make_peer: Callable[..., Peer], switchboard: Switchboard
) -> None:
    parties = {who: make_peer(who) for who in PARTIES}
    for party in parties.values():
        party.publish_file(VP8_OPUS_20S)
        await party.connect()
    observer, streams = await _observe(make_peer, switchboard)
    assert sorted(streams.values()) == sorted(PARTIES * 2), streams
    assert await eventually(lambda: all(observer.by_mid.get(mid) for mid in streams), 10)

    # Both leave; the astrologer comes back first, with another clip. Its audio would take
    # the first free audio slot, the caller's, if slots were not kept per publisher.
    for who in PARTIES:
        await engine.leave(observer.room_id, who)
    before = {mid: len(frames) for mid, frames in observer.by_mid.items()}
    back = make_peer("astrologer")
    back.publish_file(VP8_OPUS)
    await back.connect()
    own = [mid for mid, who in streams.items() if who == "astrologer"]
    theirs = [mid for mid, who in streams.items() if who == "caller"]

    def astrologer_back_on_its_own_slots() -> bool:
        return all(len(late(observer, mid, before)) >= 20 for mid in own)

    assert await eventually(astrologer_back_on_its_own_slots, 10)
    video = next(mid for mid in own if kind_of(observer, mid) == "video")
    frames = late(observer, video, before)
    sent = sent_by(back, "video")
    first = next(i for i, f in enumerate(frames) if f.data in sent)  # before: the old stream's
    assert only_from(frames[first:], back, "video")
    for mid in theirs:
        # The caller is away: nothing of the astrologer's on their slots (their own last frames,
        # held or in flight when they left, may still come out).
        got = late(observer, mid, before)
        if kind_of(observer, mid) == "video":
            assert not any(f.data in sent_by(back, "video") for f in got), mid
        assert len(got) < 20, f"a stream on the caller's {mid}"
    assert len(observer.pc.getTransceivers()) == 2 + len(streams)  # no new m-sections
