"""Chat in a joined consultation: messages (masked, persisted first), typing, reads, replay."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from billing.consultations import State
from signalling import errors, protocol
from signalling.chat import ConsultationClosed
from signalling.connection import Connection, Replay
from signalling.context import HubContext, uuid_of
from signalling.errors import SignalError
from signalling.masking import mask

REPLAY_PAGE = 500


async def message(ctx: HubContext, conn: Connection, data: dict[str, Any]) -> dict[str, Any]:
    view = ctx.joined_party(conn, data)
    if view.state != State.ACTIVE:
        raise SignalError(errors.CONSULT_NOT_ACTIVE, "the consultation is not active",
                          {"state": view.state.value})
    chat = ctx.services.chat
    text: str | None = data.get("text")
    upload_id: UUID | None = None
    masked = False
    if text is not None:
        result = mask(text, ctx.settings.masking)
        text, masked = result.text, result.masked
    else:
        upload_id = uuid_of(data, "upload_id")
        meta = await chat.upload_meta(upload_id)
        if meta is None or meta.consultation_id != view.id or meta.uploader_id != conn.user_id:
            raise SignalError(errors.UPLOAD_NOT_FOUND, "no such upload of yours here")
    try:
        stored, new = await chat.append(
            view.id, conn.user_id, str(data["client_id"]), text=text, upload_id=upload_id,
            masked=masked,
        )
    except ConsultationClosed:  # ended on another node, before this one's view heard of it
        raise SignalError(errors.CONSULT_NOT_ACTIVE, "the consultation is not active",
                          {"state": State.ENDED.value}) from None
    body = stored.to_json()
    if new:
        await ctx.router.to_room(
            view.id, protocol.event("message", {"message": body}), exclude=conn.id,
            seq=stored.seq,
        )
    return {"message": body, "duplicate": not new}


async def typing(ctx: HubContext, conn: Connection, data: dict[str, Any]) -> dict[str, Any]:
    view = ctx.joined_party(conn, data)
    await ctx.router.to_room(
        view.id,
        protocol.event("typing", {"consultation_id": str(view.id),
                                  "user_id": str(conn.user_id),
                                  "typing": bool(data["typing"])}),
        exclude=conn.id,
    )
    return {}


async def read(ctx: HubContext, conn: Connection, data: dict[str, Any]) -> dict[str, Any]:
    view = ctx.joined_party(conn, data)
    seq = await ctx.services.chat.mark_read(view.id, conn.user_id, int(data["seq"]))
    await ctx.router.to_room(
        view.id,
        protocol.event("read", {"consultation_id": str(view.id),
                                "user_id": str(conn.user_id), "seq": seq}),
        exclude=conn.id,
    )
    return {"seq": seq}


async def replay(ctx: HubContext, conn: Connection, room: UUID, since: int) -> int:
    """Send every message after ``since`` in order, then the live ones held meanwhile."""
    held = Replay()
    conn.replays[room] = held
    cursor = since
    sent = 0
    try:
        while True:
            page = await ctx.services.chat.since(room, cursor, REPLAY_PAGE)
            for stored in page:
                await conn.send(protocol.event("message", {"message": stored.to_json()}))
                cursor = stored.seq
                sent += 1
            if len(page) < REPLAY_PAGE:
                break
    finally:
        if conn.replays.get(room) is held:
            del conn.replays[room]
        conn.cursors[room] = max(cursor, conn.cursors.get(room, 0))
    for seq, frame in sorted(held.pending, key=lambda item: item[0]):
        if seq > cursor:
            await conn.send(frame)
            cursor = seq
    return sent
