"""ICE gathering policy: loopback host candidates, UDP port range, 1:1 NAT public IP."""

from __future__ import annotations

import re

import pytest
from aiortc import RTCPeerConnection

from media.config import MediaSettings
from media.engine import MediaEngine
from media.ice import IcePolicy, apply_ice_policy
from tests.media.peers import Peer, Switchboard
from tests.polling import eventually

CANDIDATE = re.compile(
    r"a=candidate:\S+ 1 udp \d+ (\S+) (\d+) typ (\w+)(?: raddr (\S+) rport (\d+))?"
)


async def test_aioice_alone_skips_loopback_the_policy_adds_it() -> None:
    plain = RTCPeerConnection()
    plain.addTransceiver("audio")
    await plain.setLocalDescription(await plain.createOffer())
    assert "127.0.0.1" not in {m[0] for m in CANDIDATE.findall(plain.localDescription.sdp)}
    await plain.close()

    pc = RTCPeerConnection()
    pc.addTransceiver("audio")
    apply_ice_policy(pc, IcePolicy(host_addresses=("127.0.0.1",)))
    await pc.setLocalDescription(await pc.createOffer())
    assert {m[0] for m in CANDIDATE.findall(pc.localDescription.sdp)} == {"127.0.0.1"}
    await pc.close()


async def test_port_range_and_public_ip_are_advertised_and_media_flows() -> None:
    settings = MediaSettings(
        ice_host_addresses=("127.0.0.1",),
        public_ip="203.0.113.7",
        udp_port_min=47000,
        udp_port_max=47099,
    )
    board = Switchboard()
    engine = MediaEngine(settings, board)
    peer = board.add(Peer(engine, "room-nat", "caller"))
    try:
        peer.receive("audio", "video")
        await peer.connect()
        found = CANDIDATE.findall(peer.pc.remoteDescription.sdp)
        hosts = [c for c in found if c[2] == "host"]
        srflx = [c for c in found if c[2] == "srflx"]
        assert hosts and all(c[0] == "127.0.0.1" and 47000 <= int(c[1]) <= 47099 for c in hosts)
        assert srflx and all(
            c[0] == "203.0.113.7" and c[3] == "127.0.0.1" and c[1] == c[4] for c in srflx
        )
        assert {c[1] for c in srflx} == {c[1] for c in hosts}
        assert await eventually(lambda: peer.pc.connectionState == "connected", 30)
    finally:
        await peer.close()
        await engine.close()


@pytest.mark.parametrize("lo,hi", [(5000, 4000), (-1, 10), (0, 10), (1, 70000)])
def test_bad_port_range_rejected(lo: int, hi: int) -> None:
    with pytest.raises(ValueError):
        MediaSettings(udp_port_min=lo, udp_port_max=hi)
