"""ICE on one UDP port per node (media.udp_mux): aiortc peers in several rooms hold calls with
every server-side peer connection on the node's single socket; garbage and unknown usernames
on that port are dropped without disturbing them; closing a peer connection leaves nothing
behind in the demultiplexer."""

from __future__ import annotations

import os
import re
import socket
import struct
from collections.abc import AsyncIterator

import aioice.ice
import pytest
from aioice import stun

from media.config import MediaSettings
from media.engine import MediaEngine
from media.stun_peek import is_binding_success
from media.udp_mux import MuxRoute, SharedUdpPort
from tests.media.conftest import VP8_OPUS_20S
from tests.media.peers import Peer, Switchboard
from tests.polling import eventually
from tests.sockets import udp_sockets_on

SERVER_HOST = "127.0.0.3"
"""The node's ICE host address: apart from the test peers' (127.0.0.1), so the server's
sockets are told apart from theirs in this one process."""


def server_port(engine: MediaEngine) -> SharedUdpPort:
    assert engine.shared_port is not None
    return engine.shared_port


def nominated_remote(peer: Peer) -> tuple[str, int] | None:
    """The server address of the peer's nominated ICE pair (RFC 8445 §8.1.1)."""
    connection = peer.pc.getTransceivers()[0].receiver.transport.transport._connection
    pair = connection._nominated.get(1)
    return None if pair is None else pair.remote_addr


@pytest.fixture
async def single_port_engine() -> AsyncIterator[tuple[MediaEngine, Switchboard]]:
    board = Switchboard()
    engine = MediaEngine(MediaSettings(ice_host_addresses=(SERVER_HOST,), udp_port=0), board)
    yield engine, board
    await engine.close()


def flowing(peers: list[Peer], at_least: dict[str, int]) -> bool:
    return all(len(p.received[k]) >= n for p in peers for k, n in at_least.items())


async def start_call(engine: MediaEngine, board: Switchboard, room: str) -> list[Peer]:
    peers = [board.add(Peer(engine, room, who)) for who in ("astrologer", "caller")]
    for peer in peers:
        peer.publish_file(VP8_OPUS_20S)
        await peer.connect()
    return peers


async def test_calls_in_several_rooms_share_one_udp_socket(
    single_port_engine: tuple[MediaEngine, Switchboard],
) -> None:
    engine, board = single_port_engine
    shared = server_port(engine)
    calls = [await start_call(engine, board, f"room-{i}") for i in range(3)]
    peers = [p for call in calls for p in call]
    try:
        assert await eventually(lambda: flowing(peers, {"video": 10, "audio": 10}), 30), [
            {k: len(v) for k, v in p.received.items()} for p in peers
        ]
        # Six server-side peer connections, one socket: the kernel sees exactly one UDP socket
        # on the node's address, and every peer's nominated pair ends at it.
        assert udp_sockets_on(SERVER_HOST) == [(SERVER_HOST, shared.port)]
        assert {nominated_remote(p) for p in peers} == {(SERVER_HOST, shared.port)}
        (mux,) = shared.muxes
        assert mux.routes == len(peers)
    finally:
        for peer in peers:
            await peer.close()
    # The server side closes with its participants: no username or address stays behind.
    for call in calls:
        await engine.close_room(call[0].room_id)
    (mux,) = shared.muxes
    assert await eventually(lambda: mux.routes == 0 and mux.addresses == 0, 30), (
        mux.routes,
        mux.addresses,
    )
    assert udp_sockets_on(SERVER_HOST) == [(SERVER_HOST, shared.port)]


def binding_request(username: str | None) -> bytes:
    request = stun.Message(
        message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST
    )
    if username is not None:
        request.attributes["USERNAME"] = username
    request.add_message_integrity(b"not-the-password")
    request.add_fingerprint()
    return bytes(request)


async def test_garbage_and_unknown_usernames_do_not_disturb_a_live_call(
    single_port_engine: tuple[MediaEngine, Switchboard],
) -> None:
    engine, board = single_port_engine
    shared = server_port(engine)
    peers = await start_call(engine, board, "room-garbage")
    target = (SERVER_HOST, shared.port)
    try:
        assert await eventually(lambda: flowing(peers, {"video": 10, "audio": 10}), 30)
        # the server's ufrag for the caller, from its answer (RFC 8839 §5.4)
        ufrag = re.findall(r"a=ice-ufrag:(\S+)", peers[1].pc.remoteDescription.sdp)[0]
        before = {id(p): {k: len(v) for k, v in p.received.items()} for p in peers}
        attacker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        attacker.bind(("127.0.0.1", 0))
        try:
            for i in range(200):
                attacker.sendto(os.urandom(1 + i % 300), target)  # garbage of every size
                attacker.sendto(binding_request(f"nobody{i}:x"), target)  # unknown username
                attacker.sendto(binding_request(None), target)  # no USERNAME
                attacker.sendto(  # an SRTP-looking packet from an address nobody holds
                    struct.pack("!BBHII", 0x80, 96, i, i, 1234) + os.urandom(100), target
                )
                # a live ufrag with a wrong password: the agent rejects it (RFC 8445 §7.3)
                attacker.sendto(binding_request(f"{ufrag}:x"), target)
        finally:
            attacker.close()
        drops = shared.drops.counts
        assert await eventually(
            lambda: drops.get("unknown_username", 0) >= 200
            and drops.get("unknown_address", 0) >= 400,
            30,
        ), drops
        # The call goes on: both parties keep receiving both kinds.
        assert await eventually(
            lambda: all(
                len(p.received[k]) >= before[id(p)][k] + 20
                for p in peers
                for k in ("video", "audio")
            ),
            30,
        ), [{k: len(v) for k, v in p.received.items()} for p in peers]
        assert all(p.pc.connectionState == "connected" for p in peers)
    finally:
        for peer in peers:
            await peer.close()


async def test_consent_freshness_runs_through_the_shared_port(
    single_port_engine: tuple[MediaEngine, Switchboard], monkeypatch: pytest.MonkeyPatch
) -> None:
    """RFC 7675 consent checks every 0.1 s instead of 5 s: an agent whose consent responses
    went astray would give up after 6 misses (~0.6 s). Dozens of rounds later the call is up."""
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 0.1)
    engine, board = single_port_engine
    (mux,) = server_port(engine).muxes
    sent = {"requests": 0, "successes": 0}
    send = mux.send

    def counting_send(route: MuxRoute, data: bytes, addr: tuple[str, int]) -> None:
        if data[:2] == b"\x00\x01":
            sent["requests"] += 1
        elif is_binding_success(data):
            sent["successes"] += 1
        send(route, data, addr)

    monkeypatch.setattr(mux, "send", counting_send)
    peers = await start_call(engine, board, "room-consent")
    try:
        assert await eventually(lambda: flowing(peers, {"video": 5, "audio": 5}), 30)
        start = dict(sent)
        # both directions: the node's own checks (answered through the port) and the peers'
        assert await eventually(
            lambda: sent["requests"] >= start["requests"] + 40
            and sent["successes"] >= start["successes"] + 40,
            30,
        ), (start, sent)
        assert all(p.pc.connectionState == "connected" for p in peers)
        before = [len(p.received["audio"]) for p in peers]
        pairs = list(zip(peers, before, strict=True))
        assert await eventually(lambda: all(len(p.received["audio"]) > n + 10 for p, n in pairs))
    finally:
        for peer in peers:
            await peer.close()


async def test_a_public_ip_is_advertised_with_the_shared_port() -> None:
    """1:1 NAT (MEDIA_PUBLIC_IP) on one port: the server-reflexive twin carries the node's port."""
    settings = MediaSettings(
        ice_host_addresses=(SERVER_HOST,), udp_port=0, public_ip="203.0.113.7"
    )
    board = Switchboard()
    engine = MediaEngine(settings, board)
    peer = board.add(Peer(engine, "room-nat", "caller"))
    try:
        peer.receive("audio")
        await peer.connect()
        port = str(server_port(engine).port)
        found = re.findall(
            r"a=candidate:\S+ 1 udp \d+ (\S+) (\d+) typ (\w+)", peer.pc.remoteDescription.sdp
        )
        assert sorted(found) == [("127.0.0.3", port, "host"), ("203.0.113.7", port, "srflx")]
        assert await eventually(lambda: peer.pc.connectionState == "connected", 20)
    finally:
        await peer.close()
        await engine.close()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"udp_port": 5000},  # no host address to bind on
        {"udp_port": 70000, "ice_host_addresses": ("127.0.0.1",)},
        {"udp_port": 5000, "udp_port_min": 4000, "udp_port_max": 4100,
         "ice_host_addresses": ("127.0.0.1",)},
    ],
)
def test_bad_single_port_settings_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        MediaSettings(**kwargs)  # type: ignore[arg-type]
