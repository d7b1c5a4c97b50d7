"""The shared port's routing rules (media.udp_mux), on real loopback sockets: a STUN request
goes by its username, everything else by an address an agent sent to; an authenticated answer
moves an address, an error answer binds nothing; closing an agent's transport frees all of it."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from aioice import stun

from media.udp_mux import MuxTransport, SharedUdpPort, UdpMux
from tests.polling import eventually

HOST = "127.0.0.1"


class Agent(asyncio.DatagramProtocol):
    """Records what the port delivers to it."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, tuple[str, int]]] = []
        self.lost = False

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.append((data, addr))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True


def stun_bytes(cls: stun.Class, username: str | None = None) -> bytes:
    m = stun.Message(message_method=stun.Method.BINDING, message_class=cls)
    if username is not None:
        m.attributes["USERNAME"] = username
    return bytes(m)


@pytest.fixture
async def port() -> AsyncIterator[SharedUdpPort]:
    shared = SharedUdpPort.open([HOST], 0, buffer=bytearray(65536))
    yield shared
    shared.close()


@pytest.fixture
def remote() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    return sock


def mux_of(port: SharedUdpPort) -> UdpMux:
    mux = port.mux(HOST)
    assert mux is not None
    return mux


async def test_requests_by_username_the_rest_by_bound_address(
    port: SharedUdpPort, remote: socket.socket
) -> None:
    mux = mux_of(port)
    a, b = Agent(), Agent()
    ufrag_a, ufrag_b = port.new_ufrag(), port.new_ufrag()
    mux.attach(ufrag_a, a)
    transport_b = mux.attach(ufrag_b, b)
    here = remote.getsockname()
    target = mux.sockname

    remote.sendto(stun_bytes(stun.Class.REQUEST, f"{ufrag_b}:them"), target)
    assert await eventually(lambda: len(b.received) == 1, 30)
    remote.sendto(b"\x17\xfe\xfd dtls before anyone sent here", target)
    # a request by username binds nothing: the DTLS record has no owner yet
    assert await eventually(lambda: port.drops.counts.get("unknown_address") == 1, 30)

    transport_b.sendto(b"\x17\xfe\xfd hello", here)  # b talks to the remote: binds it
    remote.sendto(b"\x17\xfe\xfd dtls", target)
    assert await eventually(lambda: len(b.received) == 2, 30)
    assert a.received == [] and mux.addresses == 1


async def test_a_success_moves_an_address_an_error_binds_nothing(
    port: SharedUdpPort, remote: socket.socket
) -> None:
    mux = mux_of(port)
    a, b, c = Agent(), Agent(), Agent()
    transport_a = mux.attach(port.new_ufrag(), a)
    transport_b = mux.attach(port.new_ufrag(), b)
    transport_c = mux.attach(port.new_ufrag(), c)
    here = remote.getsockname()
    target = mux.sockname

    transport_c.sendto(stun_bytes(stun.Class.ERROR), here)  # c's 401 binds nothing
    transport_a.sendto(stun_bytes(stun.Class.REQUEST), here)  # a's check: a holds the address
    remote.sendto(b"\x17\xfe\xfd one", target)
    assert await eventually(lambda: len(a.received) == 1, 30)
    # b answers an authenticated check from there (a rejoin from the same address): b takes it
    transport_b.sendto(stun_bytes(stun.Class.RESPONSE), here)
    remote.sendto(b"\x17\xfe\xfd two", target)
    assert await eventually(lambda: len(b.received) == 1, 30)
    assert len(a.received) == 1 and c.received == []

    transport_a.close()  # a no longer holds the address: closing a leaves b's route alone
    remote.sendto(b"\x17\xfe\xfd three", target)
    assert await eventually(lambda: len(b.received) == 2 and a.lost, 30)


async def test_closing_frees_the_username_and_every_address(
    port: SharedUdpPort, remote: socket.socket
) -> None:
    mux = mux_of(port)
    agent = Agent()
    ufrag = port.new_ufrag()
    transport: MuxTransport = mux.attach(ufrag, agent)
    others = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
    try:
        for other in others:
            other.bind((HOST, 0))
            transport.sendto(b"\x17\xfe\xfd x", other.getsockname())
        assert (mux.routes, mux.addresses) == (1, 3)
        transport.close()
        assert (mux.routes, mux.addresses) == (0, 0)
        assert await eventually(lambda: agent.lost, 30)
        remote.sendto(stun_bytes(stun.Class.REQUEST, f"{ufrag}:them"), mux.sockname)
        assert await eventually(lambda: port.drops.counts.get("unknown_username") == 1, 30)
        transport.sendto(b"after close", remote.getsockname())  # ignored, binds nothing
        assert mux.addresses == 0
    finally:
        for other in others:
            other.close()


async def test_one_port_number_on_every_address() -> None:
    shared = SharedUdpPort.open(["127.0.0.1", "127.0.0.2"], 0, buffer=bytearray(65536))
    try:
        assert {m.sockname for m in shared.muxes} == {
            ("127.0.0.1", shared.port),
            ("127.0.0.2", shared.port),
        }
        with pytest.raises(OSError):  # taken: the node's start fails, not its first call
            SharedUdpPort.open(["127.0.0.1"], shared.port, buffer=bytearray(65536))
    finally:
        shared.close()
