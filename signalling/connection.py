"""One authenticated WebSocket (RFC 6455) and its per-connection limits."""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

from aiohttp import web

_ids = itertools.count(1)

SLOW_CONSUMER_BYTES = 512 * 1024
"""A socket whose unsent output exceeds this is cut: one slow reader never holds up the others."""


@dataclass(slots=True)
class TokenBucket:
    """Messages-per-second limit: ``rate`` tokens per second, at most ``burst`` stored."""

    rate: float
    burst: int
    tokens: float = 0.0
    stamp: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class PendingAuth:
    """Sockets of this node still waiting for their ``auth`` frame, per client address.

    Such a socket costs memory and a task but proves nothing yet, so each address may hold only
    a few at a time (the limit is per node: a short-lived count needs no shared store)."""

    def __init__(self) -> None:
        self._by_address: dict[str, int] = {}

    def enter(self, address: str, cap: int) -> bool:
        """Count one more for ``address`` unless it already holds ``cap``."""
        held = self._by_address.get(address, 0)
        if held >= cap:
            return False
        self._by_address[address] = held + 1
        return True

    def leave(self, address: str) -> None:
        held = self._by_address.pop(address, 0) - 1
        if held > 0:
            self._by_address[address] = held


@dataclass(slots=True)
class Replay:
    """Live chat frames held back while ``join_consult`` replays history from the database."""

    pending: list[tuple[int, str]] = field(default_factory=list)
    """(seq, frame) delivered live during the replay."""


class Connection:
    """A socket of one user on this node: identity, joined rooms and the send path."""

    __slots__ = (
        "bucket", "connected_at", "cursors", "id", "replays", "role", "rooms", "transport",
        "user_id", "ws",
    )

    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport | None,
        user_id: UUID,
        role: str,
        bucket: TokenBucket,
    ) -> None:
        self.id = f"c{next(_ids)}"
        """Unique on this node; used to exclude the sender from its own fan-out."""
        self.ws = ws
        self.transport = transport
        self.user_id = user_id
        self.role = role
        self.bucket = bucket
        self.connected_at = datetime.now(UTC)
        self.rooms: set[UUID] = set()
        """Consultations this socket joined."""
        self.cursors: dict[UUID, int] = {}
        """Highest chat seq replayed per room; live frames at or below it are duplicates."""
        self.replays: dict[UUID, Replay] = {}

    @property
    def closed(self) -> bool:
        return self.ws.closed

    async def send(self, frame: str) -> None:
        """Send one frame; drop a slow consumer instead of waiting for it."""
        if self.ws.closed:
            return
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if transport.get_write_buffer_size() > SLOW_CONSUMER_BYTES:
            transport.abort()
            return
        try:
            await self.ws.send_str(frame)
        except (ConnectionError, RuntimeError):
            # The peer went away between the check and the write; the reader loop cleans up.
            return

    async def send_chat(self, room: UUID, seq: int, frame: str) -> None:
        """Send a chat frame exactly once even while the room's history is being replayed."""
        replay = self.replays.get(room)
        if replay is not None:
            replay.pending.append((seq, frame))
            return
        if seq <= self.cursors.get(room, 0):
            return
        await self.send(frame)
