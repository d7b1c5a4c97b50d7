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

from billing.audit import load_snapshot
from billing.invariants import check_all
from core.bus import LocalBus, RedisBus
from core.db import Database
from kundlinow.config import Settings
from media.config import MediaSettings
from media.engine import MediaEngine
from media.errors import MediaError
from signalling.errors import SignalError
from signalling.media_routing import LocalMediaRoomRouter, RedisMediaRoomRouter, RoutedMedia
from tests.billing.helpers import grant
from tests.factories import create_user
from tests.media.peers import Frame, RecordingTrack
from tests.polling import eventually
from tests.signalling.cluster import Node, serve_nodes
from tests.signalling.media_peer import WsPeer, start_consult
from tests.signalling.wsclient import connect

MEDIA_BACK_WITHIN_S = 10.0
"""The issue's bound: parties back in media through another node this soon after a kill -9."""
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
    """Nodes whose liveness keys lapse 2 s after they die, billing 1-second minutes."""
    async with serve_nodes(db_dsn, redis_url, redis_prefix, tmp_path, **MEDIA_ENV,
                           PRESENCE_NODE_TTL="2", PRESENCE_HEARTBEAT="0.5",
                           BILLING_MINUTE_SECONDS="1", BILLING_TICK_INTERVAL="0.2") as nodes:
        yield nodes


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
            cid = await start_consult(caller, astro, str(astro_user.id))

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
    node b and media flows both ways again through the new host, within 10 s of the kill (the
    issue's failure drill). Both nodes bill 1-second minutes all along (the killed one may die
    mid-tick): the ledger holds each minute once, and every minute up to the end."""
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
            cid = await start_consult(caller, astro, str(astro_user.id))
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
            back_after = time.monotonic() - killed
            print(f"media again {back_after:.1f} s after SIGKILL of the host")
            assert back_after < MEDIA_BACK_WITHIN_S, back_after
            assert await _charged_minutes(database, cid) >= back_after  # billed throughout
            await caller.send("session_end", {"consultation_id": cid})
            assert await eventually(lambda: astro_peer.got("session_end", consultation_id=cid))
            violations = check_all(await load_snapshot(database.pool))
            assert violations == [], violations
        finally:
            for peer in peers:
                await peer.close()
            await redis.aclose()


async def _charged_minutes(database: Database, cid: str) -> int:
    minutes: int = await database.pool.fetchval(
        "SELECT minutes_charged FROM consultations WHERE id = $1::uuid", cid
    )
    return minutes


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


async def _hosted_by(router: RedisMediaRoomRouter, room_id: str, node: str) -> bool:
    return await router.host_for(room_id) == node


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
        # until z's 0.3 s TTL lapses y is told z hosts it; then y takes the room over
        assert await eventually(lambda: _hosted_by(y, "r2", "y"), 30)
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
