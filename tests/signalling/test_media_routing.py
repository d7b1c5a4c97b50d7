"""Media across nodes: two real server processes, one hosting node per room (Redis claims).

The caller's socket is on node a, the astrologer's on node b; both publish VP8 + Opus from a
pre-encoded file with real aiortc peers, and each receives the other's video and audio through
the one node that claimed the room. ``session_end`` closes the room on that node.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription

from core.bus import LocalBus, RedisBus
from core.db import Database
from kundlinow.config import Settings
from media.config import MediaSettings
from media.engine import MediaEngine
from media.errors import MediaError
from media.ice import apply_ice_policy
from signalling.errors import SignalError
from signalling.media_routing import LocalMediaRoomRouter, RedisMediaRoomRouter, RoutedMedia
from tests.billing.helpers import grant
from tests.factories import create_user
from tests.media.peers import LOOPBACK, Frame, RecordingQueue, RecordingTrack
from tests.polling import eventually
from tests.recording.sources import PacedClock, PacedSource, load_packets
from tests.signalling.cluster import Node, serve_nodes
from tests.signalling.wsclient import WsClient, connect

REPO = Path(__file__).resolve().parents[2]
CLIP = str(REPO / "tests" / "media" / "data" / "vp8_opus_320x240_20s.webm")
PUBLISH_S = 300
MEDIA_ENV = {"LOG_LEVEL": "INFO", "MEDIA_ICE_HOSTS": "127.0.0.1"}


@pytest.fixture
async def media_nodes(
    db_dsn: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> AsyncIterator[list[Node]]:
    async with serve_nodes(db_dsn, redis_url, redis_prefix, tmp_path, **MEDIA_ENV) as nodes:
        yield nodes


@pytest.fixture
async def quick_failover_nodes(
    db_dsn: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> AsyncIterator[list[Node]]:
    """Nodes whose liveness keys lapse 2 s after they die."""
    async with serve_nodes(db_dsn, redis_url, redis_prefix, tmp_path, **MEDIA_ENV,
                           PRESENCE_NODE_TTL="2", PRESENCE_HEARTBEAT="0.5") as nodes:
        yield nodes


class _TeeQueue(RecordingQueue):
    """Records a receiver's encoded frames per kind and per receiver."""

    def __init__(self, sink: list[Frame], own: list[Frame]) -> None:
        super().__init__(sink)
        self.own = own

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        before = len(self.sink)
        super().put(item, block, timeout)
        self.own.extend(self.sink[before:])


class WsPeer:
    """An aiortc client driven over the real socket: offers to the SFU, answers its offers."""

    def __init__(self, client: WsClient, cid: str) -> None:
        self.client = client
        self.cid = cid
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.received: dict[str, list[Frame]] = {"audio": [], "video": []}
        self.by_receiver: dict[int, list[Frame]] = {}
        self.frames: list[dict[str, Any]] = []
        self._hooked: set[int] = set()
        self._pump: asyncio.Task[None] | None = None
        self.sources: list[PacedSource] = []
        self.offers_answered = 0

    def publish(self) -> None:
        """The clip repeated to PUBLISH_S and paced in real time: media that outlasts the test
        however long a busy machine makes it (the 20 s clip alone ran out mid-test)."""
        clock = PacedClock()
        for kind in ("video", "audio"):
            source = PacedSource(kind, load_packets(CLIP, kind, repeat_to_s=PUBLISH_S), clock)
            self.sources.append(source)
            t = self.pc.addTransceiver(RecordingTrack(source), direction="sendrecv")
            if source.kind == "video":
                caps = RTCRtpSender.getCapabilities("video").codecs
                t.setCodecPreferences([c for c in caps if c.mimeType == "video/VP8"][:1])

    def receive(self, *kinds: str) -> None:
        for kind in kinds:
            self.pc.addTransceiver(kind, direction="recvonly")

    def _hook(self) -> None:
        for t in self.pc.getTransceivers():
            if id(t.receiver) not in self._hooked:
                self._hooked.add(id(t.receiver))
                mine = self.by_receiver[id(t.receiver)] = []
                t.receiver._RTCRtpReceiver__decoder_queue = (  # type: ignore[attr-defined]
                    _TeeQueue(self.received[t.kind], mine)
                )

    async def connect(self) -> None:
        offer = await self.pc.createOffer()
        apply_ice_policy(self.pc, LOOPBACK)
        await self.pc.setLocalDescription(offer)
        await self.client.ok("call_offer", {"consultation_id": self.cid,
                                            "sdp": self.pc.localDescription.sdp})
        answer = await self.client.event("call_answer", wait_s=30, **{"from": "sfu"})
        await self.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        self._hook()
        self._pump = asyncio.create_task(self._serve())

    async def _serve(self) -> None:
        """The only reader of the socket from now on: answers server offers, keeps the rest."""
        while True:
            try:
                frame = await self.client._read(30)
            except (TimeoutError, ConnectionError):
                return
            if frame["type"] != "call_offer":
                self.frames.append(frame)
                continue
            offer = frame["data"]
            await self.pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
            self._hook()
            answer = await self.pc.createAnswer()
            apply_ice_policy(self.pc, LOOPBACK)
            await self.pc.setLocalDescription(answer)
            await self.client.send("call_answer", {"consultation_id": self.cid,
                                                   "sdp": self.pc.localDescription.sdp})
            self.offers_answered += 1

    def got(self, kind: str, **match: Any) -> bool:
        return any(f["type"] == kind and all(f["data"].get(k) == v for k, v in match.items())
                   for f in self.frames)

    async def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            await asyncio.gather(self._pump, return_exceptions=True)
        await self.pc.close()
        for source in self.sources:
            source.stop()


async def _video_consult(caller: WsClient, astro: WsClient, astro_id: str) -> str:
    """Request, accept and join a video consultation (each socket on its own node); its id."""
    ack = await caller.ok("consult_request", {"consultant_id": astro_id, "mode": "video"})
    cid: str = ack["consultation"]["id"]
    await astro.event("consult_request")
    await astro.ok("accept", {"consultation_id": cid})
    await caller.ok("join_consult", {"consultation_id": cid})
    await astro.ok("join_consult", {"consultation_id": cid})
    return cid


def _log_events(node: Node) -> list[dict[str, Any]]:
    out = []
    for line in node.log.read_text(errors="replace").splitlines():
        with_json = line[line.find("{"):] if "{" in line else ""
        try:
            out.append(json.loads(with_json))
        except ValueError:
            continue
    return out


def _claims(node: Node, cid: str, event: str) -> int:
    return sum(1 for e in _log_events(node)
               if e.get("event") == event and e.get("room_id") == cid)


async def test_cross_node_video_call_through_one_host(
    media_nodes: list[Node], database: Database, settings: Settings, redis_url: str,
    redis_prefix: str,
) -> None:
    a, b = media_nodes
    astro_user = await create_user(database, settings, "consultant")
    caller_user = await create_user(database, settings)
    await grant(database, caller_user.id, 1_000_000)
    redis = aioredis.from_url(redis_url, decode_responses=True)
    peers: list[WsPeer] = []
    async with aiohttp.ClientSession() as session:
        try:
            caller = await connect(session, f"{a.url}/ws", caller_user.token)
            astro = await connect(session, f"{b.url}/ws", astro_user.token)
            cid = await _video_consult(caller, astro, str(astro_user.id))

            caller_peer, astro_peer = WsPeer(caller, cid), WsPeer(astro, cid)
            peers += [caller_peer, astro_peer]
            caller_peer.publish()
            await caller_peer.connect()  # node a claims the room's media
            claim_key = f"{redis_prefix}media:room:{cid}"
            host = await redis.get(claim_key)
            assert host is not None
            astro_peer.publish()
            await astro_peer.connect()  # node b forwards to node a
            assert await redis.get(claim_key) == host  # still one host

            started = time.monotonic()
            both = await eventually(
                lambda: all(len(p.received[k]) >= 10 for p in peers for k in ("video", "audio")),
                30,
            )
            assert both, _counts(peers)
            print(f"media both ways across nodes after {time.monotonic() - started:.1f} s")
            # the host told billing the call carried media: charged at its end, not refunded
            assert await eventually(lambda: _media_started(database, cid))
            # one hosting node: a claimed it, b never did and holds no peer connection
            assert _claims(a, cid, "media_room_claimed") == 1
            assert _claims(b, cid, "media_room_claimed") == 0
            assert _count(a, "participant_joined") == 2
            assert _count(b, "participant_joined") == 0
            # the frames are the publisher's, byte for byte (forwarded, never transcoded)
            sent = {bytes(f.data) for f in _sent(astro_peer, "video")}
            got = [f.data for f in caller_peer.received["video"]]
            assert sum(1 for d in got if d in sent) >= 0.9 * len(got)

            # the admin media stats: the same, from the hosting node, whichever node is asked
            admin_user = await create_user(database, settings, "admin")
            for node in (a, b):
                stats = await _media_stats(session, node, cid, admin_user.token)
                assert set(stats) == {str(caller_user.id), str(astro_user.id)}, stats
                for party in stats.values():
                    assert sum(d["frames_forwarded"] for d in party["subscribed"]) > 0, party

            # an admin observer on node b adds a server-offered m-line per kind: the host's
            # renegotiation offer comes back over the bus to node b and on to its socket
            admin = await connect(session, f"{b.url}/ws", admin_user.token)
            await admin.ok("join_consult", {"consultation_id": cid})
            observer = WsPeer(admin, cid)
            peers.append(observer)
            observer.receive("audio", "video")
            await observer.connect()
            offered = len(observer.pc.getTransceivers())
            assert await eventually(lambda: observer.offers_answered >= 1, 30)
            server_added = lambda: observer.pc.getTransceivers()[offered:]  # noqa: E731
            assert sorted(t.kind for t in server_added()) == ["audio", "video"]
            assert await eventually(  # on its own m-lines and on those the server added
                lambda: all(len(observer.by_receiver.get(id(t.receiver), ())) >= 5
                            for t in observer.pc.getTransceivers()),
                30,
            ), _counts(peers)
            assert _count(b, "participant_joined") == 0
            await admin.close()
            await observer.close()
            peers.remove(observer)
            assert await eventually(lambda: _count(a, "participant_left") == 1, 30)

            # the astrologer drops (socket and peer connection, as on a network switch): node
            # b's hub leaves on the host; a new socket + peer connection on node b within the
            # grace gets media flowing both ways again with no action from the caller
            await astro.close()
            await astro_peer.close()
            assert await eventually(lambda: _count(a, "participant_left") == 2, 30)
            astro = await connect(session, f"{b.url}/ws", astro_user.token)
            await astro.ok("join_consult", {"consultation_id": cid})
            astro_peer = WsPeer(astro, cid)
            peers[1] = astro_peer
            astro_peer.publish()
            before = len(caller_peer.received["video"])
            rejoined = time.monotonic()
            await astro_peer.connect()
            assert await eventually(
                lambda: len(caller_peer.received["video"]) > before + 5
                and all(len(astro_peer.received[k]) >= 5 for k in ("video", "audio")),
                30,
            ), _counts(peers)
            print(f"rejoin across nodes: media again after {time.monotonic() - rejoined:.1f} s")
            assert _count(b, "participant_joined") == 0

            # session_end closes the room on the host node; the claim goes; media stops
            await caller.send("session_end", {"consultation_id": cid})
            assert await eventually(lambda: caller_peer.got("session_end", consultation_id=cid)
                                  and astro_peer.got("session_end", consultation_id=cid), 30)
            assert await eventually(lambda: _absent(redis, claim_key), 30)
            assert await eventually(lambda: _claims(a, cid, "media_room_closed") == 1, 30)
            assert _claims(b, cid, "media_room_closed") == 0
            for node in (a, b):
                assert await _media_stats(session, node, cid, admin_user.token) == {}
            await asyncio.sleep(0.5)
            frozen = _counts(peers)
            await asyncio.sleep(1.0)
            after = _counts(peers)
            assert after == frozen, (frozen, after)
        finally:
            for peer in peers:
                await peer.close()
            await redis.aclose()


async def test_dead_host_is_taken_over_and_parties_rejoin(
    quick_failover_nodes: list[Node], database: Database, settings: Settings, redis_url: str,
    redis_prefix: str,
) -> None:
    """SIGKILL the hosting node: once its liveness key lapses, the surviving party's new peer
    connection (same socket) makes node b take the room over; the other party reconnects to
    node b and media flows both ways again through the new host."""
    a, b = quick_failover_nodes
    astro_user = await create_user(database, settings, "consultant")
    caller_user = await create_user(database, settings)
    await grant(database, caller_user.id, 1_000_000)
    redis: Any = aioredis.from_url(redis_url, decode_responses=True)
    peers: list[WsPeer] = []
    async with aiohttp.ClientSession() as session:
        try:
            caller = await connect(session, f"{a.url}/ws", caller_user.token)
            astro = await connect(session, f"{b.url}/ws", astro_user.token)
            cid = await _video_consult(caller, astro, str(astro_user.id))
            peers += [WsPeer(caller, cid), WsPeer(astro, cid)]
            for peer in peers:
                peer.publish()
                await peer.connect()
            claim_key = f"{redis_prefix}media:room:{cid}"
            old_host = await redis.get(claim_key)
            assert old_host is not None
            assert await eventually(
                lambda: all(len(p.received["video"]) >= 5 for p in peers), 30
            ), _counts(peers)

            a.process.send_signal(signal.SIGKILL)
            a.process.wait()
            killed = time.monotonic()
            for peer in peers:
                await peer.close()
            peers.clear()
            alive_key = f"{redis_prefix}presence:node:{old_host}"
            assert await eventually(lambda: _absent(redis, alive_key), 30)

            # the astrologer's socket on node b survived: a new peer connection on it
            astro_peer = WsPeer(astro, cid)
            peers.append(astro_peer)
            astro_peer.publish()
            await astro_peer.connect()
            new_host = await redis.get(claim_key)
            assert new_host not in (None, old_host)
            # claimed afresh (the dead host's claim lapsed) or taken over (it had not yet)
            assert (_claims(b, cid, "media_room_taken_over")
                    + _claims(b, cid, "media_room_claimed")) == 1
            # the caller comes back on node b within the grace
            caller = await connect(session, f"{b.url}/ws", caller_user.token)
            await caller.ok("join_consult", {"consultation_id": cid})
            caller_peer = WsPeer(caller, cid)
            peers.append(caller_peer)
            caller_peer.publish()
            await caller_peer.connect()
            assert await eventually(
                lambda: all(len(p.received[k]) >= 5 for p in peers for k in ("video", "audio")),
                30,
            ), _counts(peers)
            print(f"media again {time.monotonic() - killed:.1f} s after SIGKILL of the host")
        finally:
            for peer in peers:
                await peer.close()
            await redis.aclose()


async def _media_stats(
    session: aiohttp.ClientSession, node: Node, cid: str, token: str
) -> dict[str, Any]:
    async with session.get(f"{node.url}/admin/consultations/{cid}/media",
                           headers={"Authorization": f"Bearer {token}"}) as response:
        assert response.status == 200, await response.text()
        body = await response.json()
    participants: dict[str, Any] = body["participants"]
    return participants


def _counts(peers: list[WsPeer]) -> list[dict[str, int]]:
    return [{k: len(v) for k, v in p.received.items()} for p in peers]


def _count(node: Node, event: str) -> int:
    return sum(1 for e in _log_events(node) if e.get("event") == event)


def _sent(peer: WsPeer, kind: str) -> list[Frame]:
    for t in peer.pc.getTransceivers():
        track = t.sender.track
        if isinstance(track, RecordingTrack) and track.kind == kind:
            return track.sent
    return []


async def _absent(redis: Any, key: str) -> bool:
    return not await redis.exists(key)


async def _media_started(database: Database, cid: str) -> bool:
    return bool(
        await database.pool.fetchval(
            "SELECT media_started_at IS NOT NULL FROM consultations WHERE id = $1::uuid", cid
        )
    )



# ---------------------------------------------------------------------- claims, in one process


async def test_claim_takeover_ttl_and_release(redis_url: str, redis_prefix: str) -> None:
    redis = aioredis.from_url(redis_url)
    alive = f"{redis_prefix}presence:node:"

    def router(node: str, ttl_s: float = 2.0) -> RedisMediaRoomRouter:
        return RedisMediaRoomRouter(redis, redis_prefix, node, node_key_prefix=alive,
                                    ttl_s=ttl_s, refresh_s=0.2)

    x, y, z = router("x"), router("y"), router("z", ttl_s=0.3)
    try:
        await redis.set(alive + "x", "1")
        await redis.set(alive + "y", "1")
        await x.start()
        assert await x.host_for("r1") == "x"  # first come claims
        assert await y.host_for("r1") == "x"  # alive host: no takeover
        # An observation window longer than the TTL: x refreshes its claim (every 0.2 s, so a
        # busy machine may hold x's loop up to 1.8 s before the claim would lapse)
        await asyncio.sleep(2.5)
        assert await y.current_host("r1") == "x"
        await y.release("r1")  # not y's claim: untouched
        assert await y.current_host("r1") == "x"
        await redis.delete(alive + "x")  # x's presence lapsed: x is dead
        assert await y.host_for("r1") == "y"
        await x.release("r1")  # a stale host cannot delete the new claim
        assert await y.current_host("r1") == "y"
        await y.release("r1")
        assert await y.current_host("r1") is None
        # a host that stops refreshing (no refresh task: it died) loses the claim at its TTL
        await redis.set(alive + "z", "1")
        assert await z.host_for("r2") == "z"
        assert await y.host_for("r2") == "z"
        await asyncio.sleep(0.5)
        assert await y.host_for("r2") == "y"
    finally:
        await x.close()
        await y.close()
        await redis.aclose()


async def _noop(room_id: str, participant_id: str, message: dict[str, Any]) -> None:
    return None


async def test_remote_errors_keep_their_code_and_a_silent_host_times_out(
    redis_url: str, redis_prefix: str
) -> None:
    """Node y's requests run on node x's engine; x's media errors reach y with their codes."""
    redis = aioredis.from_url(redis_url)
    bus = RedisBus.from_url(redis_url, redis_prefix)
    alive = f"{redis_prefix}presence:node:"
    engines = [MediaEngine(MediaSettings(ice_host_addresses=("127.0.0.1",)), _noop)
               for _ in range(2)]
    nodes = [
        RoutedMedia(engine, RedisMediaRoomRouter(redis, redis_prefix, name,
                                                 node_key_prefix=alive),
                    bus, request_timeout_s=1.0)
        for engine, name in zip(engines, ("x", "y"), strict=True)
    ]
    x, y = nodes
    try:
        for node in nodes:
            await node.start()
        await redis.set(alive + "x", "1")
        await redis.set(alive + "y", "1")
        await x.join("room", "caller")
        await y.join("room", "astro")  # hosted by x
        assert engines[1].room_ids == [] and engines[0].tracks("room") == []
        assert set(engines[0].stats("room")) == {"caller", "astro"}
        with pytest.raises(SignalError) as bad:
            await y.handle_offer("room", "astro", "garbage")
        assert bad.value.code == "BAD_SDP"
        await y.leave("room", "astro")
        assert set(engines[0].stats("room")) == {"caller"}
        await y.join("room", "astro")
        await x.close()  # x stops listening but still looks alive
        with pytest.raises(SignalError) as silent:
            await y.handle_answer("room", "astro", "v=0")
        assert silent.value.code == "MEDIA_UNAVAILABLE"
    finally:
        for node in nodes:
            await node.close()
        for engine in engines:
            await engine.close()
        await bus.close()
        await redis.aclose()


async def test_one_node_uses_no_bus() -> None:
    """The single-node router runs everything on the local engine; nothing is published."""
    bus = LocalBus()
    engine = MediaEngine(MediaSettings(ice_host_addresses=("127.0.0.1",)), _noop)
    routed = RoutedMedia(engine, LocalMediaRoomRouter("solo"), bus)
    published: list[tuple[str, Any]] = []
    original = bus.publish

    async def spy(topic: str, event: Any) -> None:
        published.append((topic, event))
        await original(topic, event)

    bus.publish = spy  # type: ignore[method-assign]
    try:
        await routed.start()
        await routed.join("room", "p")
        assert routed.room_ids == ["room"]
        with pytest.raises(MediaError):
            await routed.handle_offer("room", "p", "garbage")
        await routed.close_room("room")
        assert routed.room_ids == []
        assert published == []
    finally:
        await routed.close()
        await engine.close()
