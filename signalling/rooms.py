"""Parties in rooms: who left or dropped, the reconnect grace and the watchdog over dead nodes.

A party whose last socket in an active room drops gets ``reconnect_grace_s`` to come back
before the consultation ends ``disconnected`` (dated at the drop). The node that lost the
socket runs the grace timer and tells the others (``dropped``/``rejoined``/``left`` control
notices); the watchdog covers nodes that die without a goodbye.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import structlog

from billing.consultations import EndReason, State
from core.errors import CodedError
from core.tasks import every
from signalling import errors, protocol
from signalling.connection import Connection
from signalling.context import HubContext, is_party
from signalling.errors import SignalError
from signalling.ports import ConsultView
from signalling.presence import room_key, user_key
from signalling.watchers import STATUS_CHANGED, status_changed, tell_status

log = structlog.get_logger(__name__)


def now() -> datetime:
    return datetime.now(UTC)


async def authorize(ctx: HubContext, user_id: UUID, role: str, room: UUID) -> ConsultView:
    """The consultation if ``user_id`` may see it (a participant or an admin)."""
    try:
        view = await ctx.services.consultations.get(room)
    except CodedError as exc:
        if exc.code == errors.NOT_FOUND:
            raise SignalError(errors.NOT_FOUND, "no such consultation") from None
        raise
    if not is_party(view, user_id) and role != "admin":
        raise SignalError(errors.FORBIDDEN, "only the participants may join")
    return view


async def _release_media(ctx: HubContext, conn: Connection, room: UUID) -> None:
    media = ctx.services.media
    key = (room, conn.user_id)
    if media is not None and ctx.rooms.media_joined.get(key) == conn.id:
        del ctx.rooms.media_joined[key]
        try:
            await media.leave(str(room), str(conn.user_id))
        except Exception:  # the socket is gone either way: say the host may keep its peer
            log.warning("media_leave_failed", consultation_id=str(room),
                        user=str(conn.user_id), exc_info=True)


async def left_room(
    ctx: HubContext, conn: Connection, room: UUID, *, dropped_at: datetime | None
) -> None:
    """``conn`` left ``room``: deliberately (``dropped_at`` None) or because its socket went."""
    view = ctx.rooms.views.get(room)
    if view is None:
        return
    if not is_party(view, conn.user_id):
        await _release_media(ctx, conn, room)
        return
    store = ctx.services.store
    await store.remove(room_key(room, conn.user_id))
    await _release_media(ctx, conn, room)
    if dropped_at is None or view.state != State.ACTIVE:
        return
    remaining = (await store.counts([room_key(room, conn.user_id)]))[0]
    if remaining > 0:
        return
    await party_dropped(ctx, room, conn.user_id, dropped_at)


async def disconnected(ctx: HubContext, conn: Connection) -> None:
    """The socket closed: leave its rooms as a drop (grace for the parties of active rooms)."""
    rooms = list(conn.rooms)
    ctx.registry.remove(conn)
    ctx.watchers.forget(conn)
    dropped_at = now()
    log.info("socket_disconnected", conn=conn.id, rooms=len(rooms))
    with contextlib.suppress(Exception):
        await ctx.services.store.remove(user_key(conn.user_id))
    if conn.role == "consultant":
        with contextlib.suppress(Exception):
            await status_changed(ctx, conn.user_id)
    for room in rooms:
        ctx.log_event(room, conn.user_id, "socket_disconnected",
                      {"conn": conn.id, "close_code": conn.ws.close_code}, at=dropped_at)
        try:
            await left_room(ctx, conn, room, dropped_at=dropped_at)
        except Exception:
            log.exception("room_leave_failed", consultation_id=str(room))
    for room in rooms:
        if not ctx.registry.by_room.get(room):
            ctx.rooms.views.pop(room, None)


async def party_dropped(ctx: HubContext, room: UUID, user_id: UUID, dropped_at: datetime) -> None:
    grace = ctx.settings.reconnect_grace_s
    log.info("party_dropped", consultation_id=str(room), user=str(user_id), grace_s=grace)
    ctx.log_event(room, user_id, "party_dropped",
                  {"grace_s": grace, "dropped_at": dropped_at.isoformat()})
    await ctx.router.to_room(
        room,
        protocol.event(
            "presence",
            {"user_id": str(user_id), "status": "reconnecting",
             "consultation_id": str(room), "grace_s": grace},
        ),
    )
    ctx.timers.schedule(
        ("grace", room, user_id), grace,
        lambda: _grace_expired(ctx, room, user_id, dropped_at),
    )
    await ctx.router.control(
        {"e": "dropped", "room": str(room), "user": str(user_id), "node": ctx.node_id}
    )


async def _grace_expired(ctx: HubContext, room: UUID, user_id: UUID, dropped_at: datetime) -> None:
    if (await ctx.services.store.counts([room_key(room, user_id)]))[0] > 0:
        return
    consultations = ctx.services.consultations
    view = await consultations.get(room)
    if view.state != State.ACTIVE:
        return
    log.info("party_gone", consultation_id=str(room), user=str(user_id))
    await end_retrying(ctx, room, EndReason.DISCONNECTED, actor_id=user_id, ended_at=dropped_at)


END_RETRY_FIRST_S = 0.5
END_RETRY_MAX_S = 30.0


async def end_retrying(
    ctx: HubContext,
    room: UUID,
    reason: EndReason,
    *,
    actor_id: UUID | None = None,
    ended_at: datetime | None = None,
    attempt: int = 0,
) -> None:
    """End a consultation no client is waiting on (a drop past its grace, a request timeout).
    An end that fails (the database went away, a deadlock) is tried again, backing off to
    END_RETRY_MAX_S, until it succeeds: a consultation left active would go on being charged.
    Billing's end is idempotent, and a retried back-dated end still ends at `ended_at`."""
    try:
        await ctx.services.consultations.end(room, reason, actor_id=actor_id, ended_at=ended_at)
    except Exception:
        delay = min(END_RETRY_MAX_S, END_RETRY_FIRST_S * 2**attempt)
        log.warning(
            "consultation_end_failed", consultation_id=str(room), reason=reason,
            retry_in_s=delay, exc_info=True,
        )
        ctx.timers.schedule(
            ("end", room), delay,
            lambda: end_retrying(
                ctx, room, reason, actor_id=actor_id, ended_at=ended_at, attempt=attempt + 1
            ),
        )


async def on_control(ctx: HubContext, event: dict[str, Any]) -> None:
    """A hub-to-hub notice from any node (this one included)."""
    if event.get("e") == STATUS_CHANGED:
        await tell_status(ctx, UUID(event["consultant_id"]))
        return
    key = (UUID(event["room"]), UUID(event["user"]))
    if event.get("e") == "rejoined":
        ctx.timers.cancel(("grace", *key))
        ctx.rooms.grace_elsewhere.discard(key)
    elif event.get("e") == "dropped" and event.get("node") != ctx.node_id:
        ctx.rooms.grace_elsewhere.add(key)
    elif event.get("e") == "left":
        ctx.rooms.seen.discard(key)


async def watch_rooms(ctx: HubContext) -> None:
    """Notice parties whose sockets vanished without a goodbye (their node died).

    A node that loses a socket starts the grace itself; a node killed outright cannot. Every
    node therefore checks, every presence heartbeat, the parties of the active rooms it
    holds sockets for: a party seen connected before and now on no live node gets the same
    grace as a dropped socket, its drop time taken as one node TTL ago (in the caller's
    favour: at most that much earlier than the truth).
    """
    await every(
        ctx.settings.presence_heartbeat_s, lambda: _check_rooms(ctx),
        failed_event="room_watchdog_failed",
    )


async def _check_rooms(ctx: HubContext) -> None:
    state = ctx.rooms
    pairs = [
        (room, user)
        for room, view in state.views.items()
        if view.state == State.ACTIVE
        for user in view.parties()
    ]
    if not pairs:
        state.seen.clear()
        return
    counts = await ctx.services.store.counts([room_key(room, user) for room, user in pairs])
    live = set(pairs)
    state.seen &= live
    state.grace_elsewhere &= live
    for pair, count in zip(pairs, counts, strict=True):
        if count > 0:
            state.seen.add(pair)
            continue
        if pair not in state.seen or ctx.timers.has(("grace", *pair)):
            continue
        if pair in state.grace_elsewhere:
            continue
        state.seen.discard(pair)
        dropped_at = now() - timedelta(seconds=ctx.settings.presence_node_ttl_s)
        await party_dropped(ctx, pair[0], pair[1], dropped_at)
