"""Call signalling (RFC 9429 JSEP offers/answers, RFC 8838 trickled ICE candidates) between a
client and the SFU, or peer to peer when there is no SFU, plus mute/camera state."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from billing.consultations import State
from signalling import errors, protocol
from signalling.connection import Connection
from signalling.context import HubContext, is_party
from signalling.errors import SignalError
from signalling.ports import ConsultView

SIGNALS = ("call_offer", "call_answer", "ice_candidate")
MEDIA_QUALITY = "media_quality"
"""The SFU paused or resumed a participant's video for its weak downlink (``media.quality``)."""
MODE_KINDS: dict[str, tuple[str, ...]] = {
    "chat": (),
    "voice": ("audio",),
    "video": ("audio", "video"),
}
"""The media a consultation's mode pays for: the SFU sends and receives only these kinds."""


def _require_active(view: ConsultView) -> None:
    if view.state != State.ACTIVE:
        raise SignalError(errors.CONSULT_NOT_ACTIVE, "the consultation is not active",
                          {"state": view.state.value})


async def media_state(ctx: HubContext, conn: Connection, data: dict[str, Any]) -> dict[str, Any]:
    """A party muted/unmuted or turned the camera off/on: tell the room. Not stored: the
    clients send their state again when a call starts and when either party rejoins."""
    view = ctx.joined_party(conn, data)
    _require_active(view)
    ctx.log_event(view.id, conn.user_id, "media_state_changed",
                  {"audio": bool(data["audio"]), "video": bool(data["video"])})
    await ctx.router.to_room(
        view.id,
        protocol.event("media_state", {"consultation_id": str(view.id),
                                       "user_id": str(conn.user_id), "role": conn.role,
                                       "audio": bool(data["audio"]),
                                       "video": bool(data["video"])}),
        exclude=conn.id,
    )
    return {}


async def call_signal(
    kind: str, ctx: HubContext, conn: Connection, data: dict[str, Any]
) -> dict[str, Any]:
    view = ctx.joined(conn, data)
    _require_active(view)
    if not MODE_KINDS.get(view.mode):
        raise SignalError(errors.MEDIA_NOT_ALLOWED, "a chat consultation carries no media",
                          {"mode": view.mode})
    target = data.get("target") or ("sfu" if ctx.services.media is not None else "peer")
    if target == "peer":
        if not is_party(view, conn.user_id):
            raise SignalError(errors.FORBIDDEN, "observers cannot send to the room")
        payload = {k: v for k, v in data.items() if k != "target"}
        await ctx.router.to_room(
            view.id,
            protocol.event(kind, {**payload, "from": str(conn.user_id)}),
            exclude=conn.id,
        )
        return {}
    return await _to_media(ctx, conn, view, kind, data)


async def _to_media(
    ctx: HubContext, conn: Connection, view: ConsultView, kind: str, data: dict[str, Any]
) -> dict[str, Any]:
    media = ctx.services.media
    if media is None:
        raise SignalError(errors.MEDIA_UNAVAILABLE, "no media server on this node")
    room, participant = str(view.id), str(conn.user_id)
    key = (view.id, conn.user_id)
    if kind == "call_offer":
        if ctx.rooms.media_joined.get(key) != conn.id:
            # First offer of this socket: a fresh peer connection (a rejoin replaces the
            # old one; aiortc has no ICE restart). Observers subscribe only.
            await media.join(room, participant, can_publish=is_party(view, conn.user_id),
                             kinds=MODE_KINDS[view.mode])
            ctx.rooms.media_joined[key] = conn.id
        answer = await media.handle_offer(room, participant, str(data["sdp"]))
        await conn.send(protocol.event("call_answer", {"consultation_id": room,
                                                       "from": "sfu", "sdp": answer}))
    elif kind == "call_answer":
        await media.handle_answer(room, participant, str(data["sdp"]))
    else:
        await media.add_ice_candidate(room, participant, data.get("candidate"))
    return {}


async def send_signal(
    ctx: HubContext, room_id: str, participant_id: str, message: dict[str, Any]
) -> None:
    """The media engine's callback: a server-initiated offer or candidate to a participant.

    ``message`` is ``{"type": "call_offer", "data": {"type": "offer", "sdp": ...}}`` (or a
    ``media_quality`` notice); it goes to the participant's socket(s) on this node joined to
    the room (signals of a room hosted by another node arrive through
    ``signalling.media_routing.RoutedMedia``).
    """
    kind = str(message.get("type", ""))
    if kind not in SIGNALS and kind != MEDIA_QUALITY:
        raise ValueError(f"not a signal: {kind!r}")
    inner = message.get("data")
    body: dict[str, Any] = inner if isinstance(inner, dict) else message
    data: dict[str, Any] = {"consultation_id": room_id, "from": "sfu"}
    if kind == MEDIA_QUALITY:
        data.update(user_id=str(body.get("participant_id")),
                    video_paused=bool(body.get("video_paused")),
                    estimated_bps=int(body.get("estimated_bps") or 0))
    elif kind == "ice_candidate":
        data["candidate"] = body.get("candidate")
    else:
        data["sdp"] = body.get("sdp")
    room = UUID(room_id)
    user = UUID(participant_id)
    frame = protocol.event(kind, data)
    owner = ctx.rooms.media_joined.get((room, user))
    for conn in list(ctx.registry.by_room.get(room, ())):
        if conn.user_id == user and (owner is None or conn.id == owner):
            await conn.send(frame)
