"""An observer joining a live two-party room: the server's subsequent offer keeps the
header-extension ids negotiated with it (RFC 8285 §6, RFC 9429 §5.2.2).

The observer's offer uses Chromium's extmap ids (audio level = 1, abs-send-time = 2,
mid = 4), not aiortc's defaults (mid = 1): aiortc's own ``createOffer`` would put mid on
id 1 in the renegotiation, which Chromium rejects (one id, two extensions in the BUNDLE).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from aiortc import RTCSessionDescription

from media.engine import MediaEngine
from media.ice import apply_ice_policy
from media.twcc import TRANSPORT_CC_URI
from tests.media.conftest import VP8_OPUS
from tests.media.peers import LOOPBACK, Peer, Switchboard
from tests.media.test_congestion import offer_transport_cc
from tests.polling import eventually

CHROMIUM_IDS = {
    "urn:ietf:params:rtp-hdrext:ssrc-audio-level": 1,
    "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time": 2,
    TRANSPORT_CC_URI: 3,
    "urn:ietf:params:rtp-hdrext:sdes:mid": 4,
}
AUDIO_LEVEL, MID = (
    "urn:ietf:params:rtp-hdrext:ssrc-audio-level", "urn:ietf:params:rtp-hdrext:sdes:mid"
)


def _with_chromium_ids(sdp: str) -> str:
    return re.sub(
        r"a=extmap:\d+ (\S+)", lambda m: f"a=extmap:{CHROMIUM_IDS[m[1]]} {m[1]}", sdp
    )


def extmaps(sdp: str) -> dict[str, dict[int, str]]:
    """``{mid: {id: uri}}`` of each m-section."""
    out: dict[str, dict[int, str]] = {}
    for section in sdp.split("\r\nm=")[1:]:
        mid = re.search(r"a=mid:(\S+)", section)
        assert mid is not None
        out[mid[1]] = {int(i): uri for i, uri in re.findall(r"a=extmap:(\d+) (\S+)", section)}
    return out


def transport_cc_payload_types(sdp: str) -> dict[str, set[int]]:
    """``{mid: {payload types with a=rtcp-fb:<pt> transport-cc}}``."""
    out: dict[str, set[int]] = {}
    for section in sdp.split("\r\nm=")[1:]:
        mid = re.search(r"a=mid:(\S+)", section)
        assert mid is not None
        out[mid[1]] = {int(pt) for pt in re.findall(r"a=rtcp-fb:(\d+) transport-cc", section)}
    return out


@pytest.mark.parametrize("transport_cc", [False, True], ids=["plain", "transport_cc"])
async def test_observer_renegotiation_keeps_extmap_ids(
    engine: MediaEngine, make_peer: Callable[..., Peer], switchboard: Switchboard,
    transport_cc: bool,
) -> None:
    """With ``transport_cc`` the observer offers the transport-wide sequence number extension
    (as Chromium does): the m-sections the server adds must carry it too, with the BUNDLE's id
    and ``transport-cc`` feedback, for the SFU to number what it sends on them."""
    parties = [make_peer("caller"), make_peer("astrologer")]
    for party in parties:
        party.publish_file(VP8_OPUS)
        await party.connect()
    observer = make_peer("observer")
    observer.receive("audio", "video")
    await engine.join(observer.room_id, "observer", can_publish=False)
    offer = await observer.pc.createOffer()
    apply_ice_policy(observer.pc, LOOPBACK)
    await observer.pc.setLocalDescription(offer)
    offer_sdp = observer.pc.localDescription.sdp
    if transport_cc:
        offer_sdp = offer_transport_cc(offer_sdp)
    answer = await engine.handle_offer(observer.room_id, "observer", _with_chromium_ids(offer_sdp))
    await observer.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    observer._hook_receivers()  # before the decoders start, as Peer.connect does
    negotiated = extmaps(answer)
    tcc = {3: TRANSPORT_CC_URI} if transport_cc else {}
    assert negotiated["0"] == {1: AUDIO_LEVEL, 4: MID, **tcc}  # the observer's ids

    # two parties x (audio, video) on two recvonly slots: the server adds m-sections
    assert await eventually(lambda: observer.offers_answered >= 1, 30)
    server_offer = next(
        m["data"]["sdp"] for _r, p, m in switchboard.messages
        if p == "observer" and m["type"] == "call_offer"
    )
    offered = extmaps(server_offer)
    assert len(offered) == 4
    for mid, ids in negotiated.items():
        assert offered[mid] == ids, f"m-section {mid} re-mapped its extension ids"
    bundle: dict[int, str] = {}
    for ids in offered.values():
        for i, uri in ids.items():
            assert bundle.setdefault(i, uri) == uri, f"id {i} maps to two extensions"
    added = [mid for mid in offered if mid not in negotiated]
    assert added
    for mid in added:
        assert (offered[mid].get(3) == TRANSPORT_CC_URI) is transport_cc, offered[mid]
        assert bool(transport_cc_payload_types(server_offer)[mid]) is transport_cc
    assert await eventually(lambda: sum(len(v) > 0 for v in observer.by_mid.values()) == 4, 30)

