"""Billing's events to the sockets of this node: state changes, minute charges, low balance.

Every node listens once to the bus topic ``consultations``. A ``consult_state`` of an ended
consultation also closes the room here (timers, presence, the SFU room) and offers the freed
astrologer to the waitlist.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from uuid import UUID

import structlog

from signalling import protocol
from signalling.context import HubContext, is_party, send_parties
from signalling.handlers.waitlist import offer_next
from signalling.ports import ENDED, REQUESTED, ConsultView
from signalling.presence import room_key

log = structlog.get_logger(__name__)

CONSULTATIONS_TOPIC = "consultations"


async def listen(ctx: HubContext, ready: asyncio.Event) -> None:
    async with ctx.services.bus.subscribe(CONSULTATIONS_TOPIC) as events:
        ready.set()
        async for event in events:
            try:
                await on_consultation_event(ctx, event)
            except Exception:
                log.exception("consultation_event_failed", event=event.get("event"))


async def on_consultation_event(ctx: HubContext, event: dict[str, Any]) -> None:
    kind = event.get("event")
    if kind == "consult_state":
        await _on_state(ctx, ConsultView.from_json(event["consultation"]))
    elif kind == "billing_tick":
        room = UUID(str(event["consultation_id"]))
        caller = UUID(str(event["caller_id"]))
        consultant = UUID(str(event["consultant_id"]))
        data = {
            "consultation_id": str(room),
            "minutes": int(event["minutes"]),
            "amount_paise": int(event["amount_paise"]),
        }
        # The caller's balance is the caller's business only.
        await ctx.registry.send_users(
            [caller], protocol.event("billing_tick",
                                     {**data, "balance_paise": event.get("balance_paise")}),
        )
        await ctx.registry.send_users(
            [consultant], protocol.event("billing_tick", {**data, "balance_paise": None})
        )
    elif kind == "balance_warning":
        room = UUID(str(event["consultation_id"]))
        users = (UUID(str(event["caller_id"])), UUID(str(event["consultant_id"])))
        await send_parties(
            ctx, room, users,
            protocol.event("balance_warning", {"consultation_id": str(room),
                                               "minutes_left": int(event["minutes_left"])}),
        )


async def _on_state(ctx: HubContext, view: ConsultView) -> None:
    if view.id in ctx.rooms.views:
        ctx.rooms.views[view.id] = view
    frame = protocol.event("consult_state", {"consultation": view.raw})
    await send_parties(ctx, view.id, view.parties(), frame)
    if view.state == REQUESTED:
        await ctx.registry.send_users(
            [view.consultant_id], protocol.event("consult_request", {"consultation": view.raw})
        )
        return
    ctx.timers.cancel(("request", view.id))
    if view.state != ENDED:
        return
    for user_id in view.parties():
        ctx.timers.cancel(("grace", view.id, user_id))
    await send_parties(
        ctx,
        view.id,
        view.parties(),
        protocol.event(
            "session_end",
            {
                "consultation_id": str(view.id),
                "reason": view.end_reason or "completed",
                "ended_at": view.raw.get("ended_at"),
                "minutes": view.raw.get("minutes_charged"),
                "amount_paise": view.raw.get("amount_charged_paise"),
            },
        ),
    )
    await _close_room(ctx, view)
    await offer_next(ctx, view.consultant_id)


async def _close_room(ctx: HubContext, view: ConsultView) -> None:
    for conn in list(ctx.registry.by_room.get(view.id, ())):
        if is_party(view, conn.user_id):
            with contextlib.suppress(Exception):
                await ctx.services.store.remove(room_key(view.id, conn.user_id))
        ctx.registry.leave(view.id, conn)
    ctx.rooms.views.pop(view.id, None)
    for key in [k for k in ctx.rooms.media_joined if k[0] == view.id]:
        del ctx.rooms.media_joined[key]
    media = ctx.services.media
    if media is not None:
        with contextlib.suppress(Exception):
            await media.close_room(str(view.id))
