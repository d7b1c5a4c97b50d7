"""Encoded media goes through the SFU byte for byte (the proof of no transcoding)."""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable
from typing import Any

import pytest

from media.engine import MediaEngine
from media.packets import payload_bounds
from media.twcc import transport_sequence
from tests.media.conftest import H264, VP8_OPUS
from tests.media.peers import Frame, Peer
from tests.media.test_congestion import TCC_ID, offer_transport_cc
from tests.polling import eventually


def _annexb_nals(data: bytes) -> list[bytes]:
    """Split an Annex B stream into NAL units (start codes of 3 or 4 bytes, RFC 6184 §1.3)."""
    out = []
    i = 0
    n = len(data)
    starts = []
    while i + 3 <= n:
        if data[i] == 0 and data[i + 1] == 0 and data[i + 2] == 1:
            starts.append(i + 3)
            i += 3
        else:
            i += 1
    for k, s in enumerate(starts):
        e = starts[k + 1] - 3 if k + 1 < len(starts) else n
        nal = data[s:e]
        while nal.endswith(b"\x00") and k + 1 < len(starts):
            nal = nal[:-1]
        out.append(nal)
    return out


def _match(sent: list[Frame], got: list[Frame], key: Callable[[bytes], object]) -> tuple[int, int]:
    """Every received frame must equal a sent frame, in order. Returns (matched, window)."""
    sent_keys = [key(f.data) for f in sent]
    pos = 0
    for frame in got:
        k = key(frame.data)
        try:
            pos = sent_keys.index(k, pos) + 1
        except ValueError as exc:
            raise AssertionError(
                f"received frame of {len(frame.data)} bytes was never sent"
            ) from exc
    first = sent_keys.index(key(got[0].data))
    return len(got), pos - first


def _mostly_arrived(sent: list[Frame], got: list[Frame], key: Callable[[bytes], object]) -> bool:
    """At least 95 % of the sent window received (``_match``); False while nothing is."""
    if not got:
        return False
    matched, window = _match(sent, got, key)
    return matched >= 0.95 * window


async def _publish_and_subscribe(
    make_peer: Callable[..., Peer], path: str, kinds: tuple[str, ...], mime: str = "video/VP8",
    *, transport_cc: bool = False, raw: list[bytes] | None = None,
) -> tuple[Peer, Peer, object, float]:
    """``transport_cc``: the subscriber offers the transport-wide sequence number extension
    (as a browser does), so the SFU numbers what it sends; ``raw`` keeps every RTP packet the
    subscriber decrypts."""
    pub = make_peer("astrologer")
    player = pub.publish_file(path, mime)
    await pub.connect()
    assert await eventually(lambda: len(pub.published["video"].sent) > 3, 30)
    sub = make_peer("caller")
    sub.receive(*kinds)
    if transport_cc:
        sub.munge = offer_transport_cc
    subscribed_at = await sub.connect()
    if raw is not None:
        keep = raw

        def record(data: bytes) -> bool:
            keep.append(bytes(data))
            return True

        sub.filter_incoming(record)
    return pub, sub, player, subscribed_at


@pytest.mark.parametrize("transport_cc", [False, True], ids=["plain", "transport_cc"])
async def test_vp8_opus_forwarded_byte_identical(
    engine: MediaEngine, make_peer: Callable[..., Peer], transport_cc: bool
) -> None:
    raw: list[bytes] = []
    pub, sub, _player, subscribed_at = await _publish_and_subscribe(
        make_peer, VP8_OPUS, ("video", "audio"), transport_cc=transport_cc, raw=raw
    )
    assert await eventually(lambda: len(sub.received["video"]) > 0, 30)
    first_video = sub.received["video"][0].at - subscribed_at
    # Well under 1 s on a quiet machine (keyframes every 0.5 s, the first one forwarded at
    # once); the 3.5 s clip bounds what can be checked: a subscription that only started once
    # most of it had played is what this catches, with room for two busy cores.
    assert first_video < 2.5, f"first video frame after {first_video:.2f}s"
    # let the clip play out, and what is still in flight arrive
    await eventually(lambda: pub.published["video"].source.readyState == "ended", 30)

    await eventually(lambda: all(
        _mostly_arrived(pub.published[k].sent, sub.received[k], lambda b: b)
        for k in ("video", "audio")
    ), 10, step=0.2)
    for kind in ("video", "audio"):
        assert sub.received[kind], f"no {kind} received"
        matched, window = _match(pub.published[kind].sent, sub.received[kind], key=lambda b: b)
        assert matched >= 0.95 * window, f"{kind}: {matched}/{window} frames arrived"
    stats = engine.stats(pub.room_id)
    assert stats["caller"]["frames_forwarded"] >= len(sub.received["video"])
    numbers = [transport_sequence(data, TCC_ID) for data in raw]
    if not transport_cc:
        assert raw and all(not data[0] & 0x10 for data in raw), "a header extension was added"
        return
    # one counter over every packet of the transport (audio and video), in sending order
    stamped = [n for n in numbers if n is not None]
    assert raw and len(stamped) == len(raw), "a packet without a transport-wide sequence number"
    steps = {(b - a) & 0xFFFF for a, b in itertools.pairwise(stamped)}
    assert steps == {1}, f"transport-wide numbers not consecutive: steps {sorted(steps)[:5]}"


async def test_h264_forwarded_nal_identical(
    engine: MediaEngine, make_peer: Callable[..., Peer]
) -> None:
    pub, sub, _player, subscribed_at = await _publish_and_subscribe(
        make_peer, H264, ("video",), "video/H264"
    )
    assert await eventually(lambda: len(sub.received["video"]) > 0, 30)
    assert sub.received["video"][0].at - subscribed_at < 2.5  # as for VP8 above
    await eventually(lambda: pub.published["video"].source.readyState == "ended", 30)

    def nals(b: bytes) -> object:
        return tuple(_annexb_nals(b))

    await eventually(
        lambda: _mostly_arrived(pub.published["video"].sent, sub.received["video"], nals),
        10, step=0.2,
    )
    matched, window = _match(pub.published["video"].sent, sub.received["video"], key=nals)
    assert matched >= 0.95 * window, f"{matched}/{window} frames arrived"
    assert engine.stats(pub.room_id)["astrologer"]["published"][0]["codec"] == "video/H264"


async def test_probe_padding_while_forwarding_leaves_the_video_stream_intact(
    engine: MediaEngine, make_peer: Callable[..., Peer]
) -> None:
    """An application-limited probe pads while video flows: its packets go on the RTX SSRC
    (as libwebrtc pads with RTX negotiated), so the video SSRC carries the forwarded stream
    alone and every frame sent from then on arrives byte for byte. (Padding that took the
    video SSRC's next sequence numbers made the forwarded packets that followed replays,
    which SRTP drops: one frame in 3 s arrived.)"""
    raw: list[bytes] = []
    pub, sub, _player, _ = await _publish_and_subscribe(
        make_peer, VP8_OPUS, ("video", "audio"), transport_cc=True, raw=raw
    )
    assert await eventually(lambda: len(sub.received["video"]) > 0, 30)
    [down] = [
        d
        for up in engine._rooms[pub.room_id].participants["astrologer"].uptracks.values()
        for d in up.downtracks
        if d.kind == "video"
    ]
    sent = pub.published["video"].sent
    padded_from = len(sent)
    padded = 0
    forward = down.forward

    def forward_and_pad(*args: Any) -> None:
        """Two padding packets after every forwarded one: mid-frame too, where a probe's
        tick may fall."""
        nonlocal padded
        forward(*args)
        padded += down.send_padding(2)

    down.forward = forward_and_pad  # type: ignore[method-assign]
    await eventually(lambda: pub.published["video"].source.readyState == "ended", 30)

    def arrived() -> int:
        """Frames sent since the padding began that arrived identical."""
        got = {f.data for f in sub.received["video"]}
        return sum(f.data in got for f in sent[padded_from:])

    expected = len(sent) - padded_from
    assert expected > 30
    assert await eventually(lambda: arrived() >= 0.95 * expected, 10, step=0.2), (
        f"{arrived()}/{expected} video frames arrived while padding"
    )

    def ssrc_and_padding_only(data: bytes) -> tuple[int, bool]:
        start, end = payload_bounds(data)
        return struct.unpack_from("!I", data, 8)[0], start >= end

    packets = [ssrc_and_padding_only(data) for data in raw]
    assert padded > 100
    assert sum(pad for ssrc, pad in packets if ssrc == down.rtx_ssrc) >= 0.9 * padded
    assert not any(pad for ssrc, pad in packets if ssrc == down.ssrc), "padding on video"
