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
from signalling.waitlist import AlreadyWaitlisted, WaitlistEntry
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
        asked = [UUID(u) for u in data["consultant_ids"]]
        # ids the viewer may not see (another caller) are left out, not reported offline, and
        # are not watched either
        ids = await service.visible_to(conn.user_id, conn.role, asked)
        if data.get("watch"):
            ctx.watchers.watch(conn, ids)
        statuses = await service.statuses(ids)
        result["statuses"] = {str(k): v for k, v in statuses.items()}
    return result


async def waitlist(ctx: HubContext, conn: Connection, data: dict[str, Any]) -> dict[str, Any]:
    consultant_id = uuid_of(data, "consultant_id")
    if data["action"] == "leave":
        left = await ctx.services.waitlist.leave(consultant_id, conn.user_id)
        return {"left": left}
    mode = str(data.get("mode", "chat"))
    position = await join_waitlist(ctx, conn.user_id, conn.role, consultant_id, mode)
    return {"waitlisted": True, "position": position, "consultant_id": str(consultant_id)}


async def join_waitlist(
    ctx: HubContext, caller_id: UUID, role: str, consultant_id: UUID, mode: str
) -> int:
    """Queue a caller who could start this consultation right now; their 1-based position.

    A place holds an astrologer's freed slot for a while, so only a caller (not an astrologer
    or admin) with the balance for the minimum minutes may take one, and one place at a time.
    """
    if role != "user":
        raise SignalError(errors.FORBIDDEN, "only callers wait for an astrologer")
    if consultant_id == caller_id:
        raise SignalError(errors.FORBIDDEN, "you cannot wait for yourself")
    shortfall = await ctx.services.consultations.start_shortfall(caller_id, consultant_id, mode)
    if shortfall > 0:
        raise SignalError(
            errors.INSUFFICIENT_BALANCE, "recharge to wait for this astrologer",
            {"shortfall_paise": shortfall},
        )
    try:
        return await ctx.services.waitlist.join(consultant_id, caller_id, mode)
    except AlreadyWaitlisted as exc:
        raise SignalError(
            errors.ALREADY_WAITLISTED, "you are already waiting for another astrologer",
            {"consultant_id": str(exc.consultant_id)},
        ) from None


async def _could_start(ctx: HubContext, entry: WaitlistEntry) -> bool:
    try:
        shortfall = await ctx.services.consultations.start_shortfall(
            entry.caller_id, entry.consultant_id, entry.mode
        )
    except Exception as exc:
        if getattr(exc, "code", None) != errors.CONSULTANT_UNAVAILABLE:
            raise
        return False  # the astrologer no longer offers this mode
    return shortfall == 0


async def _next_able(ctx: HubContext, consultant_id: UUID) -> WaitlistEntry | None:
    """Offer to the first waiting caller who can still start; skip (and tell) the others."""
    queue = ctx.services.waitlist
    while (entry := await queue.offer_next(consultant_id)) is not None:
        if await _could_start(ctx, entry):
            return entry
        await queue.skip(entry)
        log.info("waitlist_skipped", consultant=str(consultant_id), caller=str(entry.caller_id))
        await ctx.router.to_users(
            [entry.caller_id],
            protocol.event("waitlist", {"consultant_id": str(consultant_id),
                                        "status": "skipped"}),
        )
    return None


async def offer_next(ctx: HubContext, consultant_id: UUID) -> None:
    """The astrologer is free: offer them to the first caller waiting, for a while."""
    if await ctx.services.consultations.live_for_consultant(consultant_id) is not None:
        return
    entry = await _next_able(ctx, consultant_id)
    if entry is None:
        return
    offered = {"consultant.id": str(consultant_id), "caller.id": str(entry.caller_id)}
    offer_s = ctx.settings.waitlist_offer_s
    with ctx.services.tracer.start_as_current_span("consultation.offer", attributes=offered):
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
