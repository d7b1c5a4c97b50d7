"""What the SFU tells an observer (the recorder) about its rooms, and the per-track tap.

Joins and leaves are reported once, through ``MediaEngine``'s event path: the session log's
sink (``media.session_events``) and the observer's :meth:`MediaObserver.media_event` get the
same call, so the two never disagree about who joined or left.

``media`` imports nothing of the observer's: ``recording.recorder.Recorder`` implements these
protocols and ``create_app`` hands it to the ``MediaEngine``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

ForwardedPacket = tuple[int, int, int, bytes, float]
"""One packet as the forwarder keeps it for retransmission: sequence number, RTP timestamp,
marker/payload-type byte, payload, arrival (``time.monotonic()`` seconds)."""


class PacketTap(Protocol):
    """Receives a published track's packets after SRTP decryption (RTX unwrapped)."""

    def on_rtp(self, packet: ForwardedPacket) -> None:
        """One packet: the forwarder's own retransmission-history entry, so tapping a packet
        builds no object (a tuple per packet held a hand-over long was a GC-tracked object
        more per packet). Called on the forwarding path: must return quickly."""

    def on_sender_report(self, ntp: int, rtp_ts: int) -> None:
        """The publisher's RTCP sender report for this track (RFC 3550 §6.4.1)."""

    def close(self) -> None:
        """The track has ended (its publisher left or the room closed)."""


class MediaObserver(Protocol):
    """Told of joins (before the peer connection exists), published tracks, the room's media
    events and closed rooms."""

    async def participant_joined(self, room_id: str, participant_id: str) -> None:
        """Awaited before the participant's peer connection is made (the recorder looks the
        consultation up here, so its first track finds it)."""

    def track_published(
        self,
        room_id: str,
        participant_id: str,
        kind: str,
        mime_type: str,
        clock_rate: int,
        request_keyframe: Callable[[], None],
        is_keyframe: Callable[[bytes], bool],
    ) -> PacketTap | None:
        """A tap for the new track's packets, or ``None`` to leave it alone."""

    def media_event(
        self, room_id: str, participant_id: str, kind: str, data: dict[str, Any]
    ) -> None:
        """Each event the session log gets (``media.session_events``: ``joined``, ``left``,
        ``ice_state_changed`` ...), at the same moment: one report serves both hooks.
        Never on the per-packet path; must return quickly."""

    def room_closed(self, room_id: str) -> None: ...
