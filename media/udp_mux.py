"""ICE on one UDP port per node: every peer connection shares the node's socket(s).

As LiveKit's single-port mode and mediasoup's ``WebRtcServer`` do, the node binds one UDP
socket per configured host address, all on the same port, and hands each ICE agent a
:class:`MuxTransport` on it instead of a socket of its own. Incoming datagrams are
demultiplexed in two steps:

1. a STUN Binding request names its receiver: USERNAME is "<our ufrag>:<their ufrag>"
   (RFC 8445 §7.2.2, RFC 5389 §15.3), and every agent on the port has its own ufrag. Such a
   request goes to that agent, which checks its MESSAGE-INTEGRITY (RFC 8445 §7.3);
2. everything else — STUN responses, DTLS, SRTP/SRTCP (RFC 7983 §7) — goes by source
   address to the agent the address is bound to.

Addresses are bound by what the agents send, never by what anyone receives: a Binding
success response goes only to a sender the agent authenticated, and (re)binds that address to
the agent (a peer that moves, or rejoins through a new peer connection from the same address,
follows its username); a check or DTLS record to an address nobody holds binds it too, so the
answer finds its way back; an error response (the 400/401 to a check that failed) binds
nothing. A stranger who learnt a live ufrag therefore reaches the agent
only with requests it rejects, and cannot pull a live address away.

Datagrams that match neither (unknown username, unknown address, garbage) are dropped and
counted, with a rate-limited log line. Closing a transport removes its username and every
address bound to it.

Each ufrag is made unique on the node by :meth:`SharedUdpPort.new_ufrag` (aioice's own are 4
characters, RFC 8445 §5.3's 24-bit minimum, which collide among thousands of connections).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import string
import time
from collections.abc import Callable, Iterable
from typing import Any

from media.stun_peek import (
    is_binding_success,
    is_error_response,
    is_stun,
    receiver_ufrag,
    request_username,
)

logger = logging.getLogger(__name__)

Address = tuple[str, int]
DatagramSink = Callable[[int, Address], None]
"""Called with the size of a datagram that sits in the port's receive buffer, and its sender."""

_READS_PER_WAKEUP = 32
_MAX_ADDRESSES_PER_ROUTE = 64
"""An agent has a handful of remote candidates (RFC 8445 §5.1.1); an SDP listing thousands
must not grow the table without bound (checks beyond this get no answers)."""
_UFRAG_CHARS = string.ascii_letters + string.digits  # ice-char without "+" "/" (RFC 8839 §5.4)
_UFRAG_LENGTH = 16


class DropLog:
    """Counts dropped datagrams by reason and logs at most one summary per ``interval_s``:
    a flood of garbage on a public port must not become a flood of log lines."""

    def __init__(self, interval_s: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.counts: dict[str, int] = {}
        """Datagrams dropped since start, by reason."""
        self._interval_s = interval_s
        self._clock = clock
        self._since_log: dict[str, int] = {}
        self._next_log = 0.0

    def drop(self, reason: str, addr: Address) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        self._since_log[reason] = self._since_log.get(reason, 0) + 1
        now = self._clock()
        if now >= self._next_log:
            logger.warning(
                "udp_mux_dropped", extra={"dropped": dict(self._since_log), "last_from": addr}
            )
            self._since_log.clear()
            self._next_log = now + self._interval_s


class MuxRoute:
    """One ICE agent's share of a port: its ufrag, the remote addresses bound to it, and
    where its datagrams go."""

    __slots__ = ("addresses", "sink", "ufrag")

    def __init__(self, ufrag: str, sink: DatagramSink) -> None:
        self.ufrag = ufrag
        self.sink = sink
        """Replaceable: the media plane installs its SRTP fast path here once DTLS is up."""
        self.addresses: set[Address] = set()


class MuxTransport(asyncio.DatagramTransport):
    """The datagram transport an ICE agent's protocol sees: sends go out of the shared
    socket, and ``close()`` gives the agent's username and addresses back to the port."""

    def __init__(self, mux: UdpMux, route: MuxRoute, protocol: asyncio.DatagramProtocol):
        super().__init__()
        self.mux = mux
        self.route = route
        self._protocol = protocol
        self._closing = False

    @property
    def socket(self) -> socket.socket:
        """The shared socket (the media plane writes SRTP to it directly)."""
        return self.mux.socket

    def sendto(self, data: Any, addr: Any = None) -> None:
        if not self._closing:
            self.mux.send(self.route, data, addr)

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self.mux.detach(self.route)
        asyncio.get_running_loop().call_soon(self._protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()

    def is_closing(self) -> bool:
        return self._closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        # No "socket": the port's socket options are the port's, not one agent's.
        if name == "sockname":
            return self.mux.sockname
        return default


class UdpMux:
    """One UDP socket shared by every ICE agent that has a host candidate on its address."""

    def __init__(self, sock: socket.socket, buffer: Any, drops: DropLog) -> None:
        self.socket = sock
        self.sockname: Address = sock.getsockname()[:2]
        self._buffer = buffer
        self._view = memoryview(buffer)
        self._drops = drops
        self._by_ufrag: dict[str, MuxRoute] = {}
        self._by_address: dict[Address, MuxRoute] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def port(self) -> int:
        return self.sockname[1]

    @property
    def routes(self) -> int:
        """Agents attached (for tests and stats)."""
        return len(self._by_ufrag)

    @property
    def addresses(self) -> int:
        """Remote addresses bound to an agent."""
        return len(self._by_address)

    def has_ufrag(self, ufrag: str) -> bool:
        return ufrag in self._by_ufrag

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        loop.add_reader(self.socket.fileno(), self._read_ready)

    def close(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self.socket.fileno())
            self._loop = None
        self.socket.close()
        self._by_ufrag.clear()
        self._by_address.clear()

    def attach(self, ufrag: str, protocol: asyncio.DatagramProtocol) -> MuxTransport:
        """Give ``protocol`` (an ICE agent's socket protocol) a transport on this port; STUN
        requests for ``ufrag`` are routed to it from now on."""
        if ufrag in self._by_ufrag:
            raise ValueError(f"ICE ufrag {ufrag!r} is already on this port")
        view = self._view

        def deliver(size: int, addr: Address) -> None:
            protocol.datagram_received(bytes(view[:size]), addr)

        route = MuxRoute(ufrag, deliver)
        self._by_ufrag[ufrag] = route
        transport = MuxTransport(self, route, protocol)
        protocol.connection_made(transport)
        return transport

    def detach(self, route: MuxRoute) -> None:
        if self._by_ufrag.get(route.ufrag) is route:
            del self._by_ufrag[route.ufrag]
        for addr in route.addresses:
            if self._by_address.get(addr) is route:
                del self._by_address[addr]
        route.addresses.clear()

    def send(self, route: MuxRoute, data: Any, addr: Address) -> None:
        owner = self._by_address.get(addr)
        if owner is None:
            if not is_error_response(data):  # an error answers someone we do not trust
                self._bind(route, addr)
        elif owner is not route and is_binding_success(data):
            self._bind(route, addr)
        try:
            self.socket.sendto(data, addr)
        except (BlockingIOError, InterruptedError):
            self._drops.drop("send_buffer_full", addr)
        except OSError as exc:
            logger.debug("udp_mux_send_failed %s", exc, extra={"to": addr})

    def _bind(self, route: MuxRoute, addr: Address) -> None:
        if len(route.addresses) >= _MAX_ADDRESSES_PER_ROUTE:
            return
        previous = self._by_address.get(addr)
        if previous is not None:
            previous.addresses.discard(addr)
        self._by_address[addr] = route
        route.addresses.add(addr)

    def _read_ready(self) -> None:
        view = self._view
        for _ in range(_READS_PER_WAKEUP):
            try:
                size, addr = self.socket.recvfrom_into(self._buffer)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. ICMP port unreachable reported on a later read
                logger.debug("udp_mux_receive_failed %s", exc)
                return
            if len(addr) > 2:
                addr = addr[:2]  # IPv6 four-tuple
            route = self._by_address.get(addr)
            if size and is_stun(view[0]):
                username = request_username(view, size)
                if username is not None:
                    owner = self._by_ufrag.get(receiver_ufrag(username))
                    if owner is None:
                        self._drops.drop("unknown_username", addr)
                        continue
                    route = owner
            if route is None:
                self._drops.drop("unknown_address", addr)
                continue
            route.sink(size, addr)


def _bind_socket(address: str, port: int, recv_buffer_bytes: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        if recv_buffer_bytes:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, recv_buffer_bytes)
        sock.bind((address, port))
    except OSError:
        sock.close()
        raise
    return sock


class SharedUdpPort:
    """The node's one UDP port: a :class:`UdpMux` per configured host address, every one
    bound to the same port number (the first address picks it when the port is 0)."""

    def __init__(self, muxes: dict[str, UdpMux], drops: DropLog) -> None:
        self._muxes = muxes
        self.drops = drops

    @classmethod
    def open(
        cls, addresses: Iterable[str], port: int, *, buffer: Any, recv_buffer_bytes: int = 0
    ) -> SharedUdpPort:
        """Bind now (a taken port fails the node's start, not its first call) and start
        reading on the running event loop."""
        loop = asyncio.get_running_loop()
        drops = DropLog()
        muxes: dict[str, UdpMux] = {}
        try:
            for address in addresses:
                mux = UdpMux(_bind_socket(address, port, recv_buffer_bytes), buffer, drops)
                muxes[address] = mux
                port = mux.port
        except OSError:
            for mux in muxes.values():
                mux.close()
            raise
        for mux in muxes.values():
            mux.start(loop)
        logger.info("udp_mux_listening", extra={"addresses": list(muxes), "port": port})
        return cls(muxes, drops)

    @property
    def port(self) -> int:
        return next(iter(self._muxes.values())).port

    @property
    def muxes(self) -> list[UdpMux]:
        return list(self._muxes.values())

    def mux(self, address: str) -> UdpMux | None:
        return self._muxes.get(address)

    def new_ufrag(self) -> str:
        """A ufrag no agent on this node uses (RFC 8445 §5.3 asks for 24+ random bits; 16
        alphanumerics give 95)."""
        while True:
            ufrag = "".join(secrets.choice(_UFRAG_CHARS) for _ in range(_UFRAG_LENGTH))
            if not any(m.has_ufrag(ufrag) for m in self._muxes.values()):
                return ufrag

    def close(self) -> None:
        for mux in self._muxes.values():
            mux.close()
