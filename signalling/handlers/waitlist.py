"""``presence`` and ``waitlist`` messages, and offering a freed astrologer to the next caller."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import structlog

from signalling import errors, protocol
from signalling.connection import Connection
from signalling.context import HubContext, uuid_of
from signalling.errors import SignalError
from signalling.presence import AWAY
from signalling.watchers import status_changed

log = structlog.get_logger(__name__)


async def presence(ctx: HubContext, conn: Connection, data: dict[str, Any]) -> dict[str, Any]:
    service = ctx.services.presence
    result: dict[str, Any] = {}
    if "status" in data:
        if conn.role != "consultant":
            raise SignalError(errors.FORBIDDEN, "only astrologers set their availability")
        await service.set_away(conn.user_id, data["status"] == AWAY)
        result["status"] = await service.get(conn.user_id)
        await status_changed(ctx, conn.user_id)
    if "consultant_ids" in data:
        ids = [UUID(u) for u in data["consultant_ids"]]
        if data.get("watch"):
            ctx.watchers.watch(conn, ids)
        statuses = await service.statuses(ids)
        result["statuses"] = {str(k): v for k, v in statuses.items()}
    return result


async def waitlist(ctx: HubContext, conn: Connection, data: dict[str, Any]) -> dict[str, Any]:
    consultant_id = uuid_of(data, "consultant_id")
    queue = ctx.services.waitlist
    if data["action"] == "leave":
        left = await queue.leave(consultant_id, conn.user_id)
        return {"left": left}
    if consultant_id == conn.user_id:
        raise SignalError(errors.FORBIDDEN, "you cannot wait for yourself")
    position = await queue.join(consultant_id, conn.user_id, str(data.get("mode", "chat")))
    return {"waitlisted": True, "position": position, "consultant_id": str(consultant_id)}


async def offer_next(ctx: HubContext, consultant_id: UUID) -> None:
    """The astrologer is free: offer them to the first caller waiting, for a while."""
    if await ctx.services.consultations.live_for_consultant(consultant_id) is not None:
        return
    entry = await ctx.services.waitlist.offer_next(consultant_id)
    if entry is None:
        return
    offer_s = ctx.settings.waitlist_offer_s
    log.info("waitlist_offered", consultant=str(consultant_id), caller=str(entry.caller_id))
    await ctx.router.to_users(
        [entry.caller_id],
        protocol.event("waitlist", {"consultant_id": str(consultant_id), "status": "offered",
                                    "mode": entry.mode, "offer_expires_in_s": offer_s}),
    )
    ctx.timers.schedule(
        ("offer", consultant_id), offer_s + 0.05,
        lambda: _offer_expired(ctx, consultant_id, entry.caller_id),
    )


async def _offer_expired(ctx: HubContext, consultant_id: UUID, caller_id: UUID) -> None:
    await offer_next(ctx, consultant_id)
    if not await ctx.services.waitlist.is_open(consultant_id, caller_id):
        await ctx.router.to_users(
            [caller_id],
            protocol.event("waitlist", {"consultant_id": str(consultant_id),
                                        "status": "expired"}),
        )
