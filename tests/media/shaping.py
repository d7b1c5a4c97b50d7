"""A user-space UDP relay that shapes one direction of a media path on loopback.

The kernel here has no ``netem``, so bandwidth, loss and delay are applied in user space:
``Shaper`` is a token bucket (``rate_bps``, ``burst_bytes``) in front of a drop-tail queue of
``queue_s`` seconds (what a mobile link's buffer does), plus random loss and a fixed one-way
delay. ``UdpRelay`` puts one shaper on each direction between a client peer and the SFU:
each side is told the other's address is a relay port (``rewrite``), so ICE, DTLS and SRTP
all cross it unchanged. The netq harness (bench/netq.py) can reuse ``Shaper`` for its bridge.
"""

from __future__ import annotations

import asyncio
import collections
import random
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Address = tuple[str, int]


@dataclass
class Shape:
    """One direction's link: None/0 means unlimited / lossless / immediate."""

    rate_bps: int | None = None
    burst_bytes: int = 3_000
    queue_s: float = 0.25
    """Drop-tail queue, in seconds of ``rate_bps``."""
    loss: float = 0.0
    delay_s: float = 0.0


@dataclass
class Shaper:
    """Token bucket + drop-tail queue + loss + delay for one direction.

    ``submit`` takes a datagram and calls ``deliver`` when the link would hand it over;
    the shape may be changed at any time (a cap lifted, a loss burst).
    """

    shape: Shape
    deliver: Any
    seed: int = 1
    passed: int = 0
    dropped_loss: int = 0
    dropped_queue: int = 0
    _queue: collections.deque[bytes] = field(default_factory=collections.deque)
    _queued_bytes: int = 0
    _tokens: float = 0.0
    _time: float = field(default_factory=time.monotonic)
    _timer: asyncio.TimerHandle | None = None
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._tokens = float(self.shape.burst_bytes)

    def submit(self, data: bytes) -> None:
        if self.shape.loss and self._rng.random() < self.shape.loss:
            self.dropped_loss += 1
            return
        if self.shape.rate_bps is None:
            self._send(data)
            return
        if self._queued_bytes + len(data) > self.shape.rate_bps / 8 * self.shape.queue_s:
            self.dropped_queue += 1
            return
        self._queue.append(data)
        self._queued_bytes += len(data)
        self._drain()

    def _drain(self) -> None:
        self._timer = None
        rate = self.shape.rate_bps
        now = time.monotonic()
        if rate is None:
            while self._queue:
                self._send(self._queue.popleft())
            self._queued_bytes = 0
            return
        self._tokens = min(
            float(self.shape.burst_bytes), self._tokens + (now - self._time) * rate / 8
        )
        self._time = now
        while self._queue and self._tokens >= len(self._queue[0]):
            data = self._queue.popleft()
            self._queued_bytes -= len(data)
            self._tokens -= len(data)
            self._send(data)
        if self._queue and self._timer is None:
            wait = (len(self._queue[0]) - self._tokens) * 8 / rate
            self._timer = asyncio.get_running_loop().call_later(wait, self._drain)

    def _send(self, data: bytes) -> None:
        self.passed += 1
        if self.shape.delay_s:
            asyncio.get_running_loop().call_later(self.shape.delay_s, self.deliver, data)
        else:
            self.deliver(data)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._queue.clear()
        self._queued_bytes = 0

    def reshape(self, shape: Shape) -> None:
        self.shape = shape
        self._drain()


class _Side(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Any) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.on_datagram = on_datagram

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.on_datagram(data)


def _factory(side: _Side) -> Callable[[], _Side]:
    return lambda: side


class UdpRelay:
    """Relays one client peer's UDP flow to the SFU through two shapers.

    ``client_port`` is where the client sends (it believes the SFU is there); ``server_port``
    is where the SFU sends (it believes the client is there). ``rewrite`` puts these ports
    into the SDP each side receives and learns the real addresses from it.
    """

    def __init__(self, down: Shape | None = None, up: Shape | None = None) -> None:
        self.client_addr: Address | None = None
        self.server_addr: Address | None = None
        self._client_side = _Side(self._from_client)
        self._server_side = _Side(self._from_server)
        self.downlink = Shaper(down or Shape(), self._to_client, seed=1)
        self.uplink = Shaper(up or Shape(), self._to_server, seed=2)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for side in (self._client_side, self._server_side):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            # a busy test machine must not turn into a lossy link before the shaper does
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
            sock.bind(("127.0.0.1", 0))
            await loop.create_datagram_endpoint(_factory(side), sock=sock)

    def _port(self, side: _Side) -> int:
        assert side.transport is not None
        return int(side.transport.get_extra_info("sockname")[1])

    @property
    def client_port(self) -> int:
        return self._port(self._client_side)

    @property
    def server_port(self) -> int:
        return self._port(self._server_side)

    def rewrite_offer(self, sdp: str) -> str:
        """The client's offer as the SFU should see it: its candidate is our server port."""
        self.client_addr, rewritten = _swap_candidate(sdp, self.server_port)
        return rewritten

    def rewrite_answer(self, sdp: str) -> str:
        """The SFU's answer as the client should see it: its candidate is our client port."""
        self.server_addr, rewritten = _swap_candidate(sdp, self.client_port)
        return rewritten

    def _from_client(self, data: bytes) -> None:
        self.uplink.submit(data)

    def _from_server(self, data: bytes) -> None:
        self.downlink.submit(data)

    def _to_server(self, data: bytes) -> None:
        if self.server_addr is not None and self._server_side.transport is not None:
            self._server_side.transport.sendto(data, self.server_addr)

    def _to_client(self, data: bytes) -> None:
        if self.client_addr is not None and self._client_side.transport is not None:
            self._client_side.transport.sendto(data, self.client_addr)

    def close(self) -> None:
        self.downlink.close()
        self.uplink.close()
        for side in (self._client_side, self._server_side):
            if side.transport is not None:
                side.transport.close()


_CANDIDATE = re.compile(
    r"^(a=candidate:\S+ 1 udp \d+ )(127\.0\.0\.1) (\d+)( typ host[^\r\n]*)", re.M
)


def _swap_candidate(sdp: str, port: int) -> tuple[Address, str]:
    """Keep only the first loopback UDP host candidate (component 1), moved to ``port``."""
    match = _CANDIDATE.search(sdp)
    if match is None:
        raise ValueError("no loopback host candidate in the SDP")
    real = (match.group(2), int(match.group(3)))
    kept = f"{match.group(1)}{match.group(2)} {port}{match.group(4)}"
    lines = [line for line in sdp.split("\r\n") if not line.startswith("a=candidate:")]
    out = []
    for line in lines:
        out.append(line)
        if line.startswith("a=mid:"):
            out.append(kept)
    return real, "\r\n".join(out)
