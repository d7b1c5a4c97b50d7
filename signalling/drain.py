"""This node's load heartbeat and its drain (``kundlinow node drain``, SIGTERM).

A draining node takes no new rooms (placement skips it), answers ``/readyz`` with 503 (so the
load balancer sends it no new sockets), tells every socket to ``reconnect`` elsewhere and closes
those in no consultation at once with 1012 (Service Restart, RFC 6455 §7.4 registry). Live
consultations keep their sockets and media until they end or ``deadline_s`` passes; then the
remaining sockets are closed with 1012 and the rooms hosted here are evicted (their claims
released), so the parties rejoin through another node, where placement puts the room again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from core.tasks import every
from signalling import errors, protocol
from signalling.placement import CpuMeter, NodeLoad, RedisPlacement, media_load, now_ms
from signalling.routing import LocalRegistry

log = structlog.get_logger(__name__)

RECONNECT_REASON = "draining"


@dataclass(slots=True)
class DrainState:
    """Whether this node drains (read by ``/readyz``), and since when (monotonic)."""

    draining: bool = False
    since: float | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when no consultation is left here (or the deadline evicted the rest)."""


class MediaHost(Protocol):
    """What the drain needs of the routed media (``RoutedMedia``)."""

    @property
    def room_ids(self) -> list[str]:
        """Rooms whose media this node hosts."""

    def local_stats(self, room_id: str) -> dict[str, Any]:
        """This node's SFU stats of a room it hosts."""

    async def evict(self, room_id: str) -> None:
        """Close the room's media here and release its claim (parties rejoin elsewhere)."""


class NodeDrain:
    """Publishes this node's load every ``interval_s`` and drains it when asked."""

    def __init__(
        self,
        node_id: str,
        registry: LocalRegistry,
        media: MediaHost,
        placement: RedisPlacement | None,
        *,
        deadline_s: float,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.node_id = node_id
        self.state = DrainState()
        self._registry = registry
        self._media = media
        self._placement = placement
        self._deadline_s = deadline_s
        self._interval_s = interval_s
        self._clock = clock
        self._cpu = CpuMeter(clock)
        self._beat: asyncio.Task[None] | None = None
        self._drain: asyncio.Task[None] | None = None

    def load(self) -> NodeLoad:
        stats = {room: self._media.local_stats(room) for room in self._media.room_ids}
        rooms, participants, bitrate = media_load(stats)
        return NodeLoad(rooms, participants, bitrate, self._cpu.sample(),
                        self.state.draining, now_ms())

    async def start(self) -> None:
        if self._placement is None:
            return
        # A drain requested of an earlier process under this NODE_ID does not carry over.
        await self._placement.withdraw(self.node_id)
        await self._publish()
        self._beat = asyncio.create_task(
            every(self._interval_s, self._beat_once, failed_event="node_load_publish_failed"),
            name="node-load",
        )

    async def close(self) -> None:
        for task in (self._beat, self._drain):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._beat = self._drain = None
        if self._placement is not None:
            with contextlib.suppress(Exception):
                await self._placement.withdraw(self.node_id)

    async def _publish(self) -> None:
        assert self._placement is not None
        await self._placement.hosting(self.node_id, self._media.room_ids)
        await self._placement.publish(self.node_id, self.load())

    async def _beat_once(self) -> None:
        assert self._placement is not None
        if not self.state.draining and await self._placement.drain_requested(self.node_id):
            self.begin()
        await self._publish()

    def begin(self) -> asyncio.Task[None]:
        """Start draining (idempotent); the task ends when the node is empty or evicted."""
        if self._drain is None:
            self.state.draining = True
            self.state.since = self._clock()
            self._drain = asyncio.create_task(self._run(), name="node-drain")
        return self._drain

    async def _run(self) -> None:
        log.info("node_draining", node=self.node_id, deadline_s=self._deadline_s)
        if self._placement is not None:
            await self._placement.request_drain(self.node_id)
            await self._publish()
        frame = protocol.event("reconnect", {"reason": RECONNECT_REASON,
                                             "deadline_s": self._deadline_s})
        for conn in self._registry.all():
            await conn.send(frame)
        await self._close(idle_only=True)
        deadline = self._clock() + self._deadline_s
        # Polled: rooms end and sockets leave through many paths (billing, hangup, drops).
        while self._clock() < deadline:
            if not self._busy():
                break
            await asyncio.sleep(min(0.5, self._interval_s))
        if self._busy():
            log.info("node_drain_deadline", node=self.node_id, rooms=self._media.room_ids)
            await self._close(idle_only=False)
            for room in list(self._media.room_ids):
                await self._media.evict(room)
        self.state.done.set()
        log.info("node_drained", node=self.node_id)

    def _busy(self) -> bool:
        return bool(self._media.room_ids) or bool(self._registry.by_room)

    async def _close(self, *, idle_only: bool) -> None:
        conns = [c for c in self._registry.all() if not (idle_only and c.rooms)]
        await asyncio.gather(
            *(c.ws.close(code=errors.CLOSE_SERVICE_RESTART, message=b"draining") for c in conns),
            return_exceptions=True,
        )


def drain_on_sigterm(drain: NodeDrain) -> None:
    """``kundlinow serve``: SIGTERM drains the node (up to its deadline), then exits through
    aiohttp's graceful shutdown; a second SIGTERM exits at once. Replaces aiohttp's handler."""
    import signal

    from aiohttp.web import GracefulExit

    def exit_now(_: object = None) -> None:
        raise GracefulExit()

    def on_sigterm() -> None:
        if drain.state.draining and drain.state.done.is_set():
            exit_now()
        task = drain.begin()
        if task.done():
            exit_now()
        task.add_done_callback(exit_now)

    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, on_sigterm)
