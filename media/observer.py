"""What the SFU tells an observer (the recorder) about its rooms, and the per-track tap.

``media`` imports nothing of the observer's: ``recording.recorder.Recorder`` implements these
protocols and ``create_app`` hands it to the ``MediaEngine``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class PacketTap(Protocol):
    """Receives a published track's packets after SRTP decryption (RTX unwrapped)."""

    def on_rtp(self, seq: int, ts: int, b1: int, payload: bytes, arrival_ms: int) -> None:
        """One packet: sequence number, RTP timestamp, marker/payload-type byte, payload,
        arrival (monotonic ms). Called on the forwarding path: must return quickly."""

    def on_sender_report(self, ntp: int, rtp_ts: int) -> None:
        """The publisher's RTCP sender report for this track (RFC 3550 §6.4.1)."""

    def close(self) -> None:
        """The track has ended (its publisher left or the room closed)."""


class MediaObserver(Protocol):
    """Told of joins, published tracks, leaves and closed rooms."""

    async def participant_joined(self, room_id: str, participant_id: str) -> None: ...

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

    def participant_left(self, room_id: str, participant_id: str) -> None: ...

    def room_closed(self, room_id: str) -> None: ...
