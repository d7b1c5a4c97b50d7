"""The WebSocket hub of one node: what the rest of the service holds.

The parts live beside it, one concern each: :mod:`signalling.session` (handshake, auth, limits,
read loop), :mod:`signalling.dispatch` (message type -> handler, errors -> frames),
:mod:`signalling.handlers` (lifecycle, chat, call signalling, presence and waitlist),
:mod:`signalling.rooms` (drops, reconnect grace, the watchdog), :mod:`signalling.fanout`
(billing's events to the sockets) and :mod:`signalling.timers`. The hub owns this node's sockets
(:class:`LocalRegistry`), delivers through a :class:`BusRouter` (local or Redis fan-out, chosen by
the bus it is given) and starts and stops the listeners. Money is never computed here: every
transition goes through :class:`~signalling.ports.Consultations`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Hashable
from typing import Any
from uuid import UUID

from aiohttp import web

from billing.consultations import Mode
from signalling import errors, fanout, rooms, session
from signalling.chat import ChatStore
from signalling.config import SignallingSettings
from signalling.connection import PendingAuth
from signalling.context import HubContext, HubServices, RoomState
from signalling.handlers import lifecycle
from signalling.handlers.call import send_signal
from signalling.ports import ConsultView, MediaPort
from signalling.presence import PresenceService
from signalling.routing import BusRouter, LocalRegistry
from signalling.timers import Timers


class Hub:
    """The signalling hub of one node."""

    def __init__(
        self,
        settings: SignallingSettings,
        services: HubServices,
        *,
        node_id: str | None = None,
        multi_node: bool = False,
    ) -> None:
        self.settings = settings
        self.node_id = node_id or uuid.uuid4().hex[:12]
        self.registry = LocalRegistry()
        self.router = BusRouter(
            services.bus, self.registry, self.node_id, self._on_control, multi_node=multi_node
        )
        self._ctx = HubContext(
            settings=settings, node_id=self.node_id, services=services, registry=self.registry,
            router=self.router, timers=Timers(), rooms=RoomState(), pending_auth=PendingAuth(),
        )
        self._listener: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None

    @property
    def presence(self) -> PresenceService:
        return self._ctx.services.presence

    @property
    def chat(self) -> ChatStore:
        return self._ctx.services.chat

    @property
    def media(self) -> MediaPort | None:
        return self._ctx.services.media

    def has_timer(self, key: Hashable) -> bool:
        return self._ctx.timers.has(key)

    async def start(self) -> None:
        await self._ctx.services.store.start()
        await self.router.start()
        self._listener = await fanout.start(self._ctx)
        self._watchdog = asyncio.create_task(
            rooms.watch_rooms(self._ctx), name="signalling-watchdog"
        )

    async def shutdown(self) -> None:
        """Close every socket with GOING_AWAY (RFC 6455 §7.4.1: 1001)."""
        conns = self.registry.all()
        await asyncio.gather(
            *(c.ws.close(code=errors.CLOSE_GOING_AWAY, message=b"server shutdown") for c in conns),
            return_exceptions=True,
        )

    async def close(self) -> None:
        tasks = [t for t in (self._listener, self._watchdog) if t is not None]
        for task in tasks:
            task.cancel()
        await self._ctx.timers.close()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._listener = None
        self._watchdog = None
        await self.router.close()
        await self._ctx.services.store.close()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """``GET /ws``."""
        return await session.handle(self._ctx, request)

    async def authorize(self, user_id: UUID, role: str, room: UUID) -> ConsultView:
        """The consultation if ``user_id`` may see it (a participant or an admin)."""
        return await rooms.authorize(self._ctx, user_id, role, room)

    async def request_consultation(
        self,
        caller_id: UUID,
        role: str,
        consultant_id: UUID,
        mode: Mode | str,
        *,
        birth_profile_id: UUID | None = None,
    ) -> ConsultView:
        """``POST /consultations``: the rule the socket's ``consult_request`` applies too."""
        return await lifecycle.request_consultation(
            self._ctx, caller_id, role, consultant_id, Mode(mode),
            birth_profile_id=birth_profile_id,
        )

    async def send_signal(self, room_id: str, participant_id: str, message: dict[str, Any]) -> None:
        """The media engine's callback (see :func:`signalling.handlers.call.send_signal`)."""
        await send_signal(self._ctx, room_id, participant_id, message)

    async def _on_control(self, event: dict[str, Any]) -> None:
        await rooms.on_control(self._ctx, event)
