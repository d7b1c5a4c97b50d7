"""A relay-only client holds a call through coturn with the SFU (MediaEngine), using the ICE
servers from GET /turn/credentials; the SFU's own peer connections use TURN too.

The issue's acceptance: "an aiortc client with iceTransportPolicy="relay" and credentials from
GET /turn/credentials connects to the SFU, media flows, and the selected candidate pair is of
type relay".
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCSessionDescription,
)

from api.keys import MEDIA
from core.db import Database
from kundlinow.config import Settings
from media.config import MediaSettings
from tests.conftest import AppFactory
from tests.factories import online_astrologer
from tests.media.conftest import VP8_OPUS_20S
from tests.media.peers import Peer, Switchboard
from tests.polling import eventually
from tests.sockets import udp_sockets_on
from tests.turn.calls import selected_pair
from tests.turn.coturn import Coturn
from turn.config import TurnSettings
from turn.ice import IceServer, to_rtc_ice_servers


@dataclass
class RelayOnlyPeer(Peer):
    """A client peer with ``iceTransportPolicy="relay"`` (webrtc-pc §4.2.1, RFC 9429 §3.5.3):
    it gathers only relayed candidates from the TURN server and never a host candidate."""

    ice_servers: list[RTCIceServer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.pc = RTCPeerConnection(
            RTCConfiguration(
                iceServers=self.ice_servers,
                iceTransportPolicy=RTCIceTransportPolicy("relay"),
            )
        )

    async def connect(
        self,
        *,
        can_publish: bool = True,
        join: bool = True,
        kinds: tuple[str, ...] = ("audio", "video"),
    ) -> float:
        if join:
            await self.engine.join(
                self.room_id, self.participant_id, can_publish=can_publish, kinds=kinds
            )
        await self.pc.setLocalDescription(await self.pc.createOffer())
        answer = await self.engine.handle_offer(
            self.room_id, self.participant_id, self.pc.localDescription.sdp
        )
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        self._hook_receivers()
        return time.monotonic()

    async def _answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        self._hook_receivers()
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await self.engine.handle_answer(
            self.room_id, self.participant_id, self.pc.localDescription.sdp
        )
        self.offers_answered += 1


async def _wait_for_log(coturn: Coturn, pattern: str, within_s: float = 30.0) -> re.Match[str]:
    deadline = time.monotonic() + within_s
    while True:
        match = re.search(pattern, coturn.log_text())
        if match or time.monotonic() > deadline:
            assert match, f"{pattern!r} not in coturn's log:\n{coturn.log_text()[-3000:]}"
            return match
        await asyncio.sleep(0.1)


async def test_relay_only_client_calls_through_the_sfu(
    coturn: Coturn,
    aiohttp_client: Any,
    make_app: AppFactory,
    database: Database,
    settings: Settings,
) -> None:
    app = make_app(
        turn=TurnSettings(urls=(coturn.turn_url,), secret=coturn.secret),
        # The SFU's host candidates on loopback, where the test coturn may relay to.
        media=MediaSettings(ice_host_addresses=("127.0.0.1",)),
    )
    client: TestClient[Any, Any] = await aiohttp_client(app)
    caller, _online = await online_astrologer(client, database, settings)  # TURN-eligible
    response = await client.get(
        "/turn/credentials", headers={"Authorization": f"Bearer {caller.token}"}
    )
    assert response.status == 200
    servers: list[IceServer] = (await response.json())["ice_servers"]

    engine = app[MEDIA]
    switchboard = Switchboard()
    engine.bind_signal(switchboard)
    room = f"consult-{caller.id}"
    astrologer = switchboard.add(Peer(engine, room, "astrologer"))
    relayed = switchboard.add(
        RelayOnlyPeer(engine, room, "caller", ice_servers=to_rtc_ice_servers(servers))
    )
    try:
        astrologer.publish_file(VP8_OPUS_20S)
        relayed.publish_file(VP8_OPUS_20S)
        await astrologer.connect()
        await relayed.connect()

        # Media flows both ways through the relay: the SFU forwards each side's frames.
        assert await eventually(
            lambda: (
                len(relayed.received["video"]) >= 15
                and len(relayed.received["audio"]) >= 15
                and len(astrologer.received["video"]) >= 15
                and len(astrologer.received["audio"]) >= 15
            ),
            10,
        ), {k: len(v) for k, v in {**relayed.received}.items()}
        assert relayed.pc.connectionState == "connected"
        gathered = {
            c.type
            for t in relayed.pc.getTransceivers()
            for c in t.sender.transport.transport.iceGatherer.getLocalCandidates()
        }
        assert gathered == {"relay"}
        pair = selected_pair(relayed.pc)
        assert pair is not None and pair[0][0] == "relay"
    finally:
        await relayed.close()
        await astrologer.close()

    # coturn's own accounting for the caller's credential: packets relayed to and from the SFU
    # (aiortc may allocate once per transceiver before BUNDLE drops all but one, so several
    # sessions may carry this username; coturn logs each when it is deleted).
    username = re.escape(servers[0]["username"])
    pattern = rf"peer usage: realm=<[^>]*>, username=<{username}>, rp=(\d+), rb=\d+, sp=(\d+)"
    usage: list[tuple[int, int]] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        usage = [(int(rp), int(sp)) for rp, sp in re.findall(pattern, coturn.log_text())]
        if any(rp >= 30 and sp >= 30 for rp, sp in usage):
            break
        await asyncio.sleep(0.1)
    assert any(rp >= 30 and sp >= 30 for rp, sp in usage), usage
    # The SFU's own peer connections allocated on coturn too, with their own credential.
    await _wait_for_log(coturn, r"session \d+: new, realm=<[^>]*>, username=<\d+:sfu>")


@pytest.mark.parametrize("with_turn", [False, True])
async def test_sfu_ice_servers_follow_the_turn_settings(
    aiohttp_client: Any, make_app: AppFactory, with_turn: bool
) -> None:
    """create_app gives the SFU fresh TURN credentials per peer connection when TURN is
    configured, and no ICE servers (host candidates only) when it is not."""
    turn = TurnSettings(urls=("turn:turn.example.test:3478",), secret="s" * 32, ttl_s=600)
    app = make_app(turn=turn) if with_turn else make_app()
    await aiohttp_client(app)
    factory = app[MEDIA].settings.ice_servers_factory
    if not with_turn:
        assert factory is None
        return
    assert factory is not None
    (server,) = factory()
    assert server["urls"] == ["turn:turn.example.test:3478"]
    assert re.fullmatch(r"\d+:sfu", server["username"])


async def test_relay_only_client_calls_a_single_port_node(
    coturn: Coturn,
    aiohttp_client: Any,
    make_app: AppFactory,
    database: Database,
    settings: Settings,
) -> None:
    """A node on one UDP port (MEDIA_UDP_PORT): coturn relays the client's media to that port,
    the node answers from it, and the node itself allocates nothing on coturn (a TURN
    allocation is per client 5-tuple, RFC 8656 §2.2: it would need a socket per agent)."""
    host = "127.0.0.3"  # not coturn's 127.0.0.1: the node's sockets are told apart from its peers'
    app = make_app(
        turn=TurnSettings(urls=(coturn.turn_url,), secret=coturn.secret),
        media=MediaSettings(ice_host_addresses=(host,), udp_port=0),
    )
    client: TestClient[Any, Any] = await aiohttp_client(app)
    caller, _online = await online_astrologer(client, database, settings)
    response = await client.get(
        "/turn/credentials", headers={"Authorization": f"Bearer {caller.token}"}
    )
    servers: list[IceServer] = (await response.json())["ice_servers"]
    engine = app[MEDIA]
    assert engine.shared_port is not None
    node = (host, engine.shared_port.port)
    switchboard = Switchboard()
    engine.bind_signal(switchboard)
    room = f"consult-{caller.id}"
    astrologer = switchboard.add(Peer(engine, room, "astrologer"))
    relayed = switchboard.add(
        RelayOnlyPeer(engine, room, "caller", ice_servers=to_rtc_ice_servers(servers))
    )
    try:
        astrologer.publish_file(VP8_OPUS_20S)
        relayed.publish_file(VP8_OPUS_20S)
        await astrologer.connect()
        await relayed.connect()
        assert await eventually(
            lambda: all(
                len(p.received[k]) >= 15 for p in (relayed, astrologer) for k in ("audio", "video")
            ),
            20,
        ), [{k: len(v) for k, v in p.received.items()} for p in (relayed, astrologer)]
        pair = selected_pair(relayed.pc)
        assert pair is not None and pair[0] == ("relay", "host")
        nominated = relayed.pc.getTransceivers()[0].sender.transport.transport._connection
        assert nominated._nominated[1].remote_addr == node
        assert udp_sockets_on(host) == [node]
    finally:
        await relayed.close()
        await astrologer.close()
    assert "sfu>" not in coturn.log_text()
