"""What every part of the hub shares: its collaborators, its node-local room state, its timers.

The composition root (``kundlinow.app``) builds one :class:`HubServices`; the hub adds what it
owns itself (the socket registry, the router, the room state, the timers) into one
:class:`HubContext` that the session, the handlers and the billing fan-out receive.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from opentelemetry.trace import NoOpTracer, Tracer

from core.bus import EventBus
from signalling import errors
from signalling.chat import ChatStore
from signalling.config import SignallingSettings
from signalling.connection import Connection, PendingAuth
from signalling.errors import SignalError
from signalling.ports import Consultations, ConsultView, MediaPort
from signalling.presence import PresenceService, PresenceStore
from signalling.routing import BusRouter, LocalRegistry
from signalling.timers import Timers
from signalling.waitlist import Waitlist
from signalling.watchers import StatusWatchers
from turn.grants import TurnGrants


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: UUID
    role: str
    """``user``, ``consultant`` or ``admin``."""
    expires_at: float | None = None
    """Unix time the token expires; the socket closes then (signalling/tokenguard.py)."""


Authenticator = Callable[[str], Awaitable[Identity]]
"""Decodes a JWT into an :class:`Identity` and checks the account may still use it (exists,
enabled, token not revoked); raises (with a ``code`` attribute) on anything invalid."""

AuditRecorder = Callable[[UUID, str, str, str, dict[str, Any]], Awaitable[None]]
"""(actor, action, subject type, subject id, details) -> recorded."""


class SessionLogSink(Protocol):
    """Queues one event of a consultation's session log and returns at once
    (``core.session_log.EventLog.emitter``, which stamps the node id)."""

    def __call__(
        self, consultation_id: str, actor_id: str | None, kind: str, data: dict[str, Any],
        *, at: datetime | None = None,
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class HubServices:
    """The collaborators the composition root hands the hub (every local-or-Redis choice made)."""

    bus: EventBus
    store: PresenceStore
    """Socket counts per user and per (room, party), on this node or on all of them."""
    presence: PresenceService
    chat: ChatStore
    waitlist: Waitlist
    consultations: Consultations
    """Billing's consultation record; every lifecycle transition goes through it."""
    authenticate: Authenticator
    media: MediaPort | None = None
    """The SFU as routed to the room's host node; ``None`` without media."""
    turn: TurnGrants | None = None
    """Mints the ICE servers sent with ``join_consult`` (the rule and limit of REST's too)."""
    audit: AuditRecorder | None = None
    """Records admins observing a consultation."""
    session_log: SessionLogSink | None = None
    """Each consultation's timeline: sockets, drops, mute/camera, waitlist offers."""
    tracer: Tracer = field(default_factory=NoOpTracer)
    """Spans of handled client messages and waitlist offers (core/tracing.py)."""


@dataclass(slots=True)
class RoomState:
    """Node-local state of the consultations this node holds sockets for."""

    views: dict[UUID, ConsultView] = field(default_factory=dict)
    """Consultations with sockets joined on this node (kept fresh by consult_state)."""
    media_joined: dict[tuple[UUID, UUID], str] = field(default_factory=dict)
    """(room, user) -> the socket whose peer connection the SFU holds."""
    seen: set[tuple[UUID, UUID]] = field(default_factory=set)
    """(room, party) observed connected to the room on some node (watchdog state)."""
    grace_elsewhere: set[tuple[UUID, UUID]] = field(default_factory=set)
    """(room, party) whose grace timer runs on another node."""


@dataclass(frozen=True, slots=True)
class HubContext:
    """The hub of one node as its parts see it."""

    settings: SignallingSettings
    node_id: str
    services: HubServices
    registry: LocalRegistry
    router: BusRouter
    timers: Timers
    rooms: RoomState
    pending_auth: PendingAuth
    """Unauthenticated sockets per client address (see ``max_unauthenticated_per_address``)."""
    watchers: StatusWatchers = field(default_factory=StatusWatchers)
    """Sockets of this node watching astrologers' statuses (``presence`` with ``watch``)."""

    def log_event(
        self, room: UUID, actor: UUID | None, kind: str, data: dict[str, Any] | None = None,
        *, at: datetime | None = None,
    ) -> None:
        """Queue a session-log event of ``room`` (never waits for the database)."""
        sink = self.services.session_log
        if sink is not None:
            sink(str(room), str(actor) if actor else None, kind, data or {}, at=at)

    def joined(self, conn: Connection, data: dict[str, Any]) -> ConsultView:
        """The consultation named in ``data`` if ``conn`` joined it."""
        room = uuid_of(data, "consultation_id")
        view = self.rooms.views.get(room)
        if room not in conn.rooms or view is None:
            raise SignalError(
                errors.NOT_JOINED, "join_consult first", {"consultation_id": str(room)}
            )
        return view

    def joined_party(self, conn: Connection, data: dict[str, Any]) -> ConsultView:
        """As :meth:`joined`, and ``conn`` is one of the two parties (not an observer)."""
        view = self.joined(conn, data)
        if not is_party(view, conn.user_id):
            raise SignalError(errors.FORBIDDEN, "observers cannot send to the room")
        return view


def uuid_of(data: dict[str, Any], name: str) -> UUID:
    return UUID(data[name])


def is_party(view: ConsultView, user_id: UUID) -> bool:
    return user_id in view.parties()


def role_in(view: ConsultView, user_id: UUID) -> str:
    """``caller``, ``astrologer`` or ``observer`` (an admin watching)."""
    if user_id == view.caller_id:
        return "caller"
    return "astrologer" if user_id == view.consultant_id else "observer"


async def send_parties(ctx: HubContext, room: UUID, users: tuple[UUID, ...], frame: str) -> None:
    """Local delivery to both parties' sockets and to observers in the room (once each)."""
    targets: dict[str, Connection] = {}
    for user_id in users:
        for conn in ctx.registry.by_user.get(user_id, ()):
            targets[conn.id] = conn
    for conn in ctx.registry.by_room.get(room, ()):
        targets[conn.id] = conn
    for conn in list(targets.values()):
        await conn.send(frame)
