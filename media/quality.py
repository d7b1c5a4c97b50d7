"""The receiver drives the sender: a room's publishers follow their subscribers' downlinks.

In a consultation one party's downlink decides what the other party's encoder should send:
each published video track's REMB (draft-alvestrand-rmcat-remb-03) is the lowest
``Downlink.target_bps`` among the *parties* subscribed to it — an admin observer on a poor
link gets its video paused but never lowers what the parties see — capped at the configured
``remb_bitrate_bps``. When a subscriber's video is paused or resumed, both parties are told
(``media_quality``; docs/PROTOCOL.md) so that the web app can say why the picture stopped.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # room.py imports this module
    from media.room import Participant, Room


def publisher_targets(participants: Iterable[Participant], ceiling_bps: int) -> None:
    """Set every published video track's REMB from its party subscribers' downlinks."""
    everyone = list(participants)
    for pub in everyone:
        for up in pub.uptracks.values():
            if not up.is_video:
                continue
            targets = [
                sub.feedback.downlink.target_bps
                for sub in everyone
                if sub is not pub
                and sub.can_publish
                and any(d.source is up for d in sub.downtracks.values())
            ]
            up.set_remb(min([ceiling_bps, *targets]))


def quality_data(sub: Participant) -> dict[str, Any]:
    downlink = sub.feedback.downlink
    return {
        "participant_id": sub.participant_id,
        "video_paused": downlink.video_paused,
        "estimated_bps": downlink.bps,
    }


def downlink_changed(room: Room, sub: Participant, paused_changed: bool) -> Awaitable[None] | None:
    """``sub``'s downlink estimate moved: retarget the publishers (synchronously: this runs
    for every receiver report). If its video was paused or resumed, apply that to its video
    subscriptions and return the notice to the parties, for the caller to run as a task.
    Nothing while congestion control is off (``CongestionSettings.enabled``)."""
    if not room.settings.congestion.enabled:
        return None
    publisher_targets(room.participants.values(), room.settings.remb_bitrate_bps)
    if not paused_changed:
        return None
    paused = sub.feedback.downlink.video_paused
    for down in sub.downtracks.values():
        if down.kind == "video":
            down.set_paused(paused)
    data = quality_data(sub)
    room.on_event(room.room_id, sub.participant_id, "media_quality", data)
    return _tell_parties(room, data)


async def _tell_parties(room: Room, data: dict[str, Any]) -> None:
    for party in list(room.participants.values()):
        if party.can_publish:
            await room.send_signal(
                room.room_id, party.participant_id, {"type": "media_quality", "data": data}
            )
