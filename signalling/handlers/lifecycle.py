"""The consultation's lifecycle from the sockets: request, accept, reject, end, join and leave.

Money is never computed here: every transition goes through
:class:`~signalling.ports.Consultations` (billing), whose ``consult_state`` events come back
through :mod:`signalling.fanout`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import structlog

from billing.consultations import EndReason, Mode, State
from core.errors import CodedError
from signalling import errors, protocol
from signalling.connection import Connection
from signalling.context import HubContext, is_party, role_in, uuid_of
from signalling.errors import SignalError
from signalling.handlers.chat import replay
from signalling.handlers.waitlist import join_waitlist
from signalling.ports import ConsultView
from signalling.presence import AWAY, BUSY, OFFLINE, room_key
from signalling.rooms import authorize, end_retrying, left_room
from turn.grants import TurnNotAllowed, TurnRateLimited
from turn.ice import IceServer

log = structlog.get_logger(__name__)


async def ping(ctx: HubContext, conn: Connection, data: dict[str, Any]) -> dict[str, Any]:
    return {"server_time": datetime.now(UTC).isoformat()}


async def consult_request(
    ctx: HubContext, conn: Connection, data: dict[str, Any]
) -> dict[str, Any]:
    consultant_id = uuid_of(data, "consultant_id")
    mode = Mode(data["mode"])
    wants_waitlist = bool(data.get("waitlist", False))
    # The astrologer reads this profile and its chart with the request (issue 15).
    profile = uuid_of(data, "birth_profile_id") if data.get("birth_profile_id") else None
    status = await ctx.services.presence.get(consultant_id)
    if status in (OFFLINE, AWAY):
        raise SignalError(errors.CONSULTANT_OFFLINE, f"the astrologer is {status}",
                          {"status": status})
    # a busy astrologer's queue is joined without asking billing (it would refuse anyway)
    if status != BUSY:
        try:
            view = await request_consultation(
                ctx, conn.user_id, conn.role, consultant_id, mode, birth_profile_id=profile
            )
        except CodedError as exc:
            if exc.code != errors.CONSULTANT_UNAVAILABLE or not wants_waitlist:
                raise
        else:
            return {"consultation": view.raw}
    elif not wants_waitlist:
        raise SignalError(errors.CONSULTANT_UNAVAILABLE, "the astrologer is busy",
                          {"waitlist": True})
    position = await join_waitlist(ctx, conn.user_id, conn.role, consultant_id, mode)
    return {"waitlisted": True, "position": position, "consultant_id": str(consultant_id)}


async def request_consultation(
    ctx: HubContext,
    caller_id: UUID,
    role: str,
    consultant_id: UUID,
    mode: Mode,
    *,
    birth_profile_id: UUID | None = None,
) -> ConsultView:
    """The one rule for requesting a consultation, over the socket and over REST.

    Only a caller (role ``user``) may request; while the astrologer's freed slot is offered to a
    waiting caller, anyone else gets CONSULTANT_UNAVAILABLE; billing then checks the balance and
    that the astrologer is free. A request that goes through closes the caller's waitlist place
    and times out after ``request_timeout_s`` unless accepted.
    """
    if role != "user":
        raise SignalError(errors.FORBIDDEN, "only callers request consultations")
    if consultant_id == caller_id:
        raise SignalError(errors.FORBIDDEN, "you cannot consult yourself")
    services = ctx.services
    if await services.waitlist.blocked_for(consultant_id, caller_id):
        raise SignalError(errors.CONSULTANT_UNAVAILABLE,
                          "the astrologer's free slot is offered to a waiting caller",
                          {"waitlist": True, "reason": "offered"})
    view = await services.consultations.request(
        caller_id, consultant_id, mode, birth_profile_id=birth_profile_id
    )
    offered_at = await services.waitlist.taken(consultant_id, caller_id)
    if offered_at is not None:  # the slot this request took was offered from the queue
        ctx.log_event(view.id, caller_id, "offered", {"mode": mode}, at=offered_at)
    ctx.timers.cancel(("offer", consultant_id))
    ctx.timers.schedule(
        ("request", view.id), ctx.settings.request_timeout_s,
        lambda: _request_expired(ctx, view.id),
    )
    return view


async def _request_expired(ctx: HubContext, room: UUID) -> None:
    view = await ctx.services.consultations.get(room)
    if view.state == State.REQUESTED:
        log.info("request_timed_out", consultation_id=str(room))
        await end_retrying(ctx, room, EndReason.TIMEOUT)


async def accept(ctx: HubContext, conn: Connection, data: dict[str, Any]) -> dict[str, Any]:
    view = await ctx.services.consultations.accept(
        uuid_of(data, "consultation_id"), conn.user_id
    )
    return {"consultation": view.raw}


async def reject(ctx: HubContext, conn: Connection, data: dict[str, Any]) -> dict[str, Any]:
    view = await ctx.services.consultations.reject(
        uuid_of(data, "consultation_id"), conn.user_id
    )
    return {"consultation": view.raw}


async def session_end(ctx: HubContext, conn: Connection, data: dict[str, Any]) -> dict[str, Any]:
    room = uuid_of(data, "consultation_id")
    consultations = ctx.services.consultations
    view = await consultations.get(room)
    participant = is_party(view, conn.user_id)
    if not participant and conn.role != "admin":
        raise SignalError(errors.FORBIDDEN, "not your consultation")
    if view.state == State.REQUESTED and conn.user_id == view.consultant_id:
        view = await consultations.reject(room, conn.user_id)
        return {"consultation": view.raw}
    if not participant:
        reason = EndReason.ADMIN
    elif view.state == State.REQUESTED:
        reason = EndReason.CANCELLED
    else:
        reason = EndReason.COMPLETED
    statement = await consultations.end(room, reason, actor_id=conn.user_id)
    return {"consultation_id": str(room), "statement": statement}


async def join_consult(ctx: HubContext, conn: Connection, data: dict[str, Any]) -> dict[str, Any]:
    room = uuid_of(data, "consultation_id")
    view = await authorize(ctx, conn.user_id, conn.role, room)
    participant = is_party(view, conn.user_id)
    first = room not in conn.rooms
    ctx.rooms.views[room] = view
    services = ctx.services
    if first:
        ctx.registry.join(room, conn)
        ctx.log_event(room, conn.user_id, "socket_connected",
                      {"conn": conn.id, "role": role_in(view, conn.user_id),
                       "connected_at": conn.connected_at.isoformat(), "state": view.state})
        if not participant and services.audit is not None:
            # An admin watching a private consultation is always on the record.
            await services.audit(conn.user_id, "observer_joined", "consultation", str(room),
                                 {"node": ctx.node_id, "state": view.state})
        if participant and view.state != State.ENDED:
            await services.store.add(room_key(room, conn.user_id))
            await ctx.router.control(
                {"e": "rejoined", "room": str(room), "user": str(conn.user_id)}
            )
            await ctx.router.to_room(
                room,
                protocol.event("presence", {"user_id": str(conn.user_id), "status": "online",
                                            "consultation_id": str(room)}),
                exclude=conn.id,
            )
    replayed = 0
    if "since" in data:
        replayed = await replay(ctx, conn, room, int(data["since"]))
    return {
        "consultation": view.raw,
        "last_seq": await services.chat.last_seq(room),
        "replayed": replayed,
        "reads": {str(k): v for k, v in (await services.chat.reads(room)).items()},
        "ice_servers": await _ice_servers(ctx, conn, room),
    }


async def _ice_servers(ctx: HubContext, conn: Connection, room: UUID) -> list[IceServer]:
    """STUN/TURN servers with a fresh credential for a party of this accepted consultation (or
    an online astrologer), under the same per-user limit as GET /turn/credentials; anyone else,
    or past the limit: the servers that need no credential. The join itself never fails here."""
    grants = ctx.services.turn
    if grants is None:
        return []
    try:
        return await grants.issue(conn.user_id, conn.role, room)
    except (TurnNotAllowed, TurnRateLimited):
        return grants.stun_only()


async def leave_consult(
    ctx: HubContext, conn: Connection, data: dict[str, Any]
) -> dict[str, Any]:
    room = uuid_of(data, "consultation_id")
    if room in conn.rooms:
        await left_room(ctx, conn, room, dropped_at=None)
        ctx.registry.leave(room, conn)
        ctx.log_event(room, conn.user_id, "socket_left", {"conn": conn.id})
        # A deliberate leave is not a drop: no node's watchdog should start a grace for it.
        await ctx.router.control({"e": "left", "room": str(room), "user": str(conn.user_id)})
        if not ctx.registry.by_room.get(room):
            ctx.rooms.views.pop(room, None)
    return {"consultation_id": str(room)}
