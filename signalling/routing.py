"""Routing: which sockets belong to which user and room, and fan-out across nodes.

The hub sees only :class:`Router`. :class:`BusRouter` publishes every delivery on the event bus;
each node's listener hands it to the sockets it holds (:class:`LocalRegistry`). With ``LocalBus``
that is one process; with ``RedisBus`` (pub/sub) any number of nodes behave as one. The choice is
made once, in the composition root, by the bus it is given.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol
from uuid import UUID

import structlog

from core.bus import EventBus, start_subscriber
from core.tasks import stop_if_cancelled
from signalling.connection import Connection

log = structlog.get_logger(__name__)

TOPIC = "signalling"
OUTBOX_LIMIT = 100_000
"""Deliveries waiting for the bus before new ones are dropped (memory stays bounded)."""


class Router(Protocol):
    """Delivery to users and rooms wherever their sockets are."""

    async def to_users(self, user_ids: Iterable[UUID], frame: str) -> None:
        """Every socket of these users, on every node."""

    async def to_room(
        self, room: UUID, frame: str, *, exclude: str | None = None, seq: int | None = None
    ) -> None:
        """Every socket joined to ``room`` except connection ``exclude``; ``seq`` marks chat."""

    async def control(self, event: dict[str, Any]) -> None:
        """A hub-to-hub notice (e.g. a party rejoined) seen by every node."""


class LocalRegistry:
    """The sockets held by this node, by user and by room."""

    def __init__(self) -> None:
        self.by_user: dict[UUID, set[Connection]] = {}
        self.by_room: dict[UUID, set[Connection]] = {}

    def add(self, conn: Connection) -> None:
        self.by_user.setdefault(conn.user_id, set()).add(conn)

    def remove(self, conn: Connection) -> None:
        for room in list(conn.rooms):
            self.leave(room, conn)
        conns = self.by_user.get(conn.user_id)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self.by_user[conn.user_id]

    def join(self, room: UUID, conn: Connection) -> None:
        conn.rooms.add(room)
        self.by_room.setdefault(room, set()).add(conn)

    def leave(self, room: UUID, conn: Connection) -> None:
        conn.rooms.discard(room)
        conn.cursors.pop(room, None)
        conn.replays.pop(room, None)
        members = self.by_room.get(room)
        if members is not None:
            members.discard(conn)
            if not members:
                del self.by_room[room]

    def user_in_room(self, room: UUID, user_id: UUID) -> bool:
        return any(c.user_id == user_id for c in self.by_room.get(room, ()))

    def all(self) -> list[Connection]:
        return [c for conns in self.by_user.values() for c in conns]

    async def send_users(self, user_ids: Iterable[UUID], frame: str) -> None:
        for user_id in set(user_ids):
            for conn in list(self.by_user.get(user_id, ())):
                await conn.send(frame)

    async def send_room(
        self, room: UUID, frame: str, exclude: str | None = None, seq: int | None = None
    ) -> None:
        for conn in list(self.by_room.get(room, ())):
            if conn.id == exclude:
                continue
            if seq is None:
                await conn.send(frame)
            else:
                await conn.send_chat(room, seq, frame)


class BusRouter:
    """:class:`Router` over an :class:`EventBus`; owns the one listener task of this node.

    This node's own sockets are served directly; the bus carries each delivery to the other
    nodes (which skip what they published themselves). With ``multi_node`` false (one process,
    ``LocalBus``) nothing is published at all.
    """

    def __init__(
        self,
        bus: EventBus,
        registry: LocalRegistry,
        node_id: str,
        on_control: Callable[[dict[str, Any]], Awaitable[None]],
        topic: str = TOPIC,
        *,
        multi_node: bool = True,
    ) -> None:
        self._bus = bus
        self._registry = registry
        self._node_id = node_id
        self._on_control = on_control
        self._topic = topic
        self._multi_node = multi_node
        self._task: asyncio.Task[None] | None = None
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(OUTBOX_LIMIT)
        self._flusher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Subscribe before returning, so nothing published afterwards is missed."""
        if not self._multi_node:
            return
        self._task = await start_subscriber(
            self._bus, self._topic, self._deliver,
            name="signalling-router", failed_event="signal_delivery_failed",
        )
        self._flusher = asyncio.create_task(self._flush(), name="signalling-outbox")

    async def close(self) -> None:
        for task in (self._flusher, self._task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._flusher = None

    def _publish(self, event: dict[str, Any]) -> None:
        """Queue a delivery for the other nodes (sent in order, batched by :meth:`_flush`)."""
        try:
            self._outbox.put_nowait(event)
        except asyncio.QueueFull:
            # The bus is stuck; chat is in the database and comes back with ``since``.
            log.warning("signal_outbox_full", kind=event.get("k"))

    async def _flush(self) -> None:
        """One bus message per batch of deliveries queued meanwhile: under load a publish (one
        Redis round trip and its client-side cost) carries many, in their order."""
        while True:
            batch = [await self._outbox.get()]
            while not self._outbox.empty() and len(batch) < 256:
                batch.append(self._outbox.get_nowait())
            try:
                await self._bus.publish(
                    self._topic, {"k": "b", "n": self._node_id, "items": batch}
                )
            except Exception:
                stop_if_cancelled()  # a cancelled publish may come back as a Redis error
                log.warning("signal_publish_failed", dropped=len(batch), exc_info=True)

    async def to_users(self, user_ids: Iterable[UUID], frame: str) -> None:
        users = set(user_ids)
        await self._registry.send_users(users, frame)
        if self._multi_node:
            self._publish({"k": "u", "ids": [str(u) for u in users], "f": frame})

    async def to_room(
        self, room: UUID, frame: str, *, exclude: str | None = None, seq: int | None = None
    ) -> None:
        await self._registry.send_room(room, frame, exclude, seq)
        if self._multi_node:
            event: dict[str, Any] = {"k": "r", "room": str(room), "f": frame}
            if seq is not None:
                event["s"] = seq
            self._publish(event)

    async def control(self, event: dict[str, Any]) -> None:
        await self._on_control(event)
        if self._multi_node:
            self._publish({"k": "c", "e": event})

    async def _deliver(self, event: dict[str, Any]) -> None:
        if event.get("n") == self._node_id:
            return  # served directly when it was sent
        for item in event.get("items", ()):
            try:
                await self._deliver_one(item)
            except Exception:
                log.exception("signal_delivery_failed", kind=item.get("k"))

    async def _deliver_one(self, event: dict[str, Any]) -> None:
        kind = event.get("k")
        if kind == "u":
            await self._registry.send_users((UUID(u) for u in event["ids"]), event["f"])
        elif kind == "r":
            await self._registry.send_room(UUID(event["room"]), event["f"], None, event.get("s"))
        elif kind == "c":
            await self._on_control(event["e"])
