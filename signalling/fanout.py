"""Billing's events to the sockets of this node: state changes, minute charges, low balance.

Every node listens once to the bus topic ``consultations`` (:mod:`billing.events`). A
``consult_state`` of an ended consultation also closes the room here (timers, presence, the
SFU room) and offers the freed astrologer to the waitlist.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog

from billing import events
from billing.consultations import EndReason, State
from core.bus import start_subscriber
from signalling import protocol
from signalling.context import HubContext, is_party, send_parties
from signalling.handlers.waitlist import offer_next
from signalling.ports import ConsultView
from signalling.presence import room_key
from signalling.watchers import tell_status

log = structlog.get_logger(__name__)

async def start(ctx: HubContext) -> asyncio.Task[None]:
    """Listen to billing's events; returns once subscribed."""

    async def handle(raw: dict[str, Any]) -> None:
        event = events.decode(raw)
        if event is not None:
            await on_consultation_event(ctx, event)

    return await start_subscriber(
        ctx.services.bus, events.TOPIC, handle,
        name="signalling-consultations", failed_event="consultation_event_failed",
    )


async def on_consultation_event(ctx: HubContext, event: events.ConsultationEvent) -> None:
    if isinstance(event, events.ConsultStateChanged):
        await _on_state(ctx, ConsultView.from_json(event.consultation))
    elif isinstance(event, events.MinuteCharged):
        data = {
            "consultation_id": str(event.consultation_id),
            "minutes": event.minutes,
            "amount_paise": event.amount_paise,
        }
        # The caller's balance is the caller's business only.
        await ctx.registry.send_users(
            [event.caller_id],
            protocol.event("billing_tick", {**data, "balance_paise": event.balance_paise}),
        )
        await ctx.registry.send_users(
            [event.consultant_id], protocol.event("billing_tick", {**data, "balance_paise": None})
        )
    else:
        await send_parties(
            ctx, event.consultation_id, (event.caller_id, event.consultant_id),
            protocol.event("balance_warning", {"consultation_id": str(event.consultation_id),
                                               "minutes_left": event.minutes_left}),
        )


def recording_notice(setting: str, mode: str) -> str:
    """What of this consultation is recorded: ``off``, ``audio`` or ``all`` (voice and video
    consults only; a voice consult has no video to record)."""
    if setting == "off" or mode not in ("voice", "video"):
        return "off"
    return "audio" if mode == "voice" else setting


async def _on_state(ctx: HubContext, view: ConsultView) -> None:
    if view.id in ctx.rooms.views:
        ctx.rooms.views[view.id] = view
    recording = recording_notice(ctx.settings.recording, view.mode)
    frame = protocol.event("consult_state", {"consultation": view.raw, "recording": recording})
    await send_parties(ctx, view.id, view.parties(), frame)
    if view.state == State.REQUESTED:
        await ctx.registry.send_users(
            [view.consultant_id], protocol.event("consult_request", {"consultation": view.raw})
        )
        return
    ctx.timers.cancel(("request", view.id))
    # Every node sees each state change: busy on accept, free again at the end.
    await tell_status(ctx, view.consultant_id)
    if view.state != State.ENDED:
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
                "reason": (view.end_reason or EndReason.COMPLETED).value,
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
