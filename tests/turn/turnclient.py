"""A minimal TURN client over UDP for tests: Allocate and CreatePermission (RFC 8656 §7, §10)
with the long-term credential mechanism (RFC 8489 §9.2), built on ``aioice.stun`` messages.

Unlike aioice's own TURN client it returns error responses instead of retrying or raising, so a
test can look at the exact ERROR-CODE coturn sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
from types import TracebackType

from aioice import stun

#: REQUESTED-TRANSPORT value for UDP (RFC 8656 §18.8: protocol 17 in the first octet).
UDP_TRANSPORT = 17 << 24
#: REQUESTED-TRANSPORT value for TCP (RFC 6062 §5.1).
TCP_TRANSPORT = 6 << 24


class TurnTestClient:
    """One UDP 5-tuple to a TURN server; at most one allocation."""

    def __init__(
        self,
        server: tuple[str, int],
        username: str,
        password: str,
        *,
        transport: int = UDP_TRANSPORT,
    ) -> None:
        self._transport = transport
        self._server = server
        self._username = username
        self._password = password
        family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._sock.connect(server)
        self._realm: str | None = None
        self._nonce: bytes | None = None
        self._key: bytes | None = None

    async def __aenter__(self) -> TurnTestClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._sock.close()

    async def transact(self, request: stun.Message, *, within_s: float = 10.0) -> stun.Message:
        """Send ``request`` (resent every 0.3 s, RFC 8489 §6.2.1) and return the matching
        response, success or error."""
        if self._key is not None:
            request.attributes["USERNAME"] = self._username
            request.attributes["REALM"] = self._realm
            request.attributes["NONCE"] = self._nonce
            request.add_message_integrity(self._key)
        request.add_fingerprint()
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(within_s):
            while True:
                self._sock.send(bytes(request))
                try:
                    async with asyncio.timeout(0.3):
                        while True:
                            data = await loop.sock_recv(self._sock, 4096)
                            message = stun.parse_message(data)
                            if message.transaction_id == request.transaction_id:
                                return message
                except TimeoutError:
                    continue
                except ConnectionRefusedError:
                    # An ICMP port-unreachable for an earlier send: retransmit (RFC 8489 §6.2.1).
                    await asyncio.sleep(0.1)

    async def allocate(self) -> stun.Message:
        """Allocate (RFC 8656 §7.1): first unauthenticated, then once more with the realm and
        nonce from the 401 challenge (RFC 8489 §9.2.3 / §9.2.4). Returns the final response."""
        response = await self.transact(self._allocate_request())
        if response.error_code == 401 and "NONCE" in response.attributes:
            self._realm = response.attributes["REALM"]
            self._nonce = response.attributes["NONCE"]
            self._key = hashlib.md5(
                f"{self._username}:{self._realm}:{self._password}".encode()
            ).digest()
            response = await self.transact(self._allocate_request())
        return response

    async def create_permission(self, peer_ip: str) -> stun.Message:
        """CreatePermission for ``peer_ip`` (RFC 8656 §10.1); the port is ignored by the server.
        No packet is sent to ``peer_ip``: only the TURN server sees this request."""
        request = stun.Message(stun.Method.CREATE_PERMISSION, stun.Class.REQUEST)
        request.attributes["XOR-PEER-ADDRESS"] = (peer_ip, 9)
        return await self.transact(request)

    def _allocate_request(self) -> stun.Message:
        request = stun.Message(stun.Method.ALLOCATE, stun.Class.REQUEST)
        request.attributes["REQUESTED-TRANSPORT"] = self._transport
        request.attributes["LIFETIME"] = 60
        return request
