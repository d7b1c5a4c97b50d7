"""``MediaEngine``: the service object the signalling hub drives (built by ``create_app``).

It holds rooms by id and translates the hub's calls into participant operations. All
server-initiated messages (``call_offer``) go out through the ``send_signal`` callable given
to the constructor, as ``{"type": "call_offer", "data": {"type": "offer", "sdp": ...}}``.
aiortc gathers every local candidate before an SDP is produced, so the server never trickles
``ice_candidate`` messages; it accepts the client's.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Collection, Iterator
from typing import Any

from media import aiortc_glue as glue
from media.config import MediaSettings
from media.errors import MediaError, MediaErrorCode
from media.ice import IcePolicy
from media.observer import MediaObserver
from media.room import MediaFlowing, Participant, Room, SendSignal, Track
from media.session_events import MediaEventSink, no_events
from media.stats import ForwardingTotals
from media.udp_mux import SharedUdpPort

logger = logging.getLogger(__name__)

MEDIA_KINDS = ("audio", "video")
"""Every kind of track the SFU forwards."""


class MediaEngine:
    """Rooms of participants with one peer connection each; forwards encoded media.

    With ``settings.udp_port`` set, the engine binds the node's one UDP port when it is built
    (inside the running event loop) and every peer connection gathers on it.
    """

    def __init__(
        self,
        settings: MediaSettings,
        send_signal: SendSignal,
        observer: MediaObserver | None = None,
        on_event: MediaEventSink = no_events,
    ) -> None:
        self.settings = settings
        self._send_signal = send_signal
        self._observer = observer
        """The recorder, when recording is on: told of joins, tracks, leaves, closed rooms."""
        self._on_event = on_event
        """The session log (media.session_events)."""
        self._on_media: MediaFlowing | None = None
        """Billing, told when a room's call first carries media between two parties."""
        self._rooms: dict[str, Room] = {}
        self._closed = False
        self.retired = ForwardingTotals()
        """Forwarding counters of the participants that have left (``media.metrics``)."""
        self.selected_pairs: collections.Counter[tuple[str, str, str]] = collections.Counter()
        """(local type, remote type, protocol) of every ICE pair a peer connection selected."""
        self.shared_port = (
            None
            if settings.udp_port is None
            else SharedUdpPort.open(
                settings.ice_host_addresses,
                settings.udp_port,
                buffer=glue.receive_buffer(),
                recv_buffer_bytes=settings.udp_recv_buffer_bytes,
            )
        )
        """The node's one UDP port, or None for a socket per peer connection."""
        self._ice_policy = IcePolicy(
            host_addresses=settings.ice_host_addresses,
            public_ip=settings.public_ip,
            port_min=settings.udp_port_min,
            port_max=settings.udp_port_max,
            recv_buffer_bytes=settings.udp_recv_buffer_bytes,
            shared_port=self.shared_port,
        )

    def bind_signal(self, send_signal: SendSignal) -> None:
        """Set where server-initiated messages go (the signalling hub, built after us)."""
        self._send_signal = send_signal
        for room in self._rooms.values():
            room.send_signal = send_signal

    def bind_events(self, on_event: MediaEventSink) -> None:
        """Set where session-log events go (bound with the node id, known after the hub)."""
        self._on_event = on_event

    def _event(self, room_id: str, participant_id: str, kind: str, data: dict[str, Any]) -> None:
        """The one report of a room's media events, to the session log and the observer."""
        if kind == "ice_state_changed" and "local_candidate_type" in data:
            self.selected_pairs[
                (data["local_candidate_type"], data["remote_candidate_type"], data["protocol"])
            ] += 1
        self._on_event(room_id, participant_id, kind, data)
        if self._observer is not None:
            self._observer.media_event(room_id, participant_id, kind, data)

    def bind_media_flowing(self, on_media: MediaFlowing | None) -> None:
        """Set who learns that a room's call first carried media between two parties
        (billing: a voice or video consultation without it is refunded at its end)."""
        self._on_media = on_media

    async def _media_flowing(self, room_id: str) -> None:
        if self._on_media is not None:
            await self._on_media(room_id)

    def _participant(self, room_id: str, participant_id: str) -> Participant:
        room = self._rooms.get(room_id)
        participant = room.participants.get(participant_id) if room else None
        if participant is None:
            raise MediaError(MediaErrorCode.NOT_JOINED, "join the room first")
        return participant

    async def join(
        self,
        room_id: str,
        participant_id: str,
        *,
        can_publish: bool = True,
        kinds: Collection[str] = MEDIA_KINDS,
    ) -> None:
        """Create the participant's peer connection; a second join replaces the first
        (a rejoin after a dropped connection: aiortc has no ICE restart). Only tracks of
        ``kinds`` are received or sent; offered m-sections of other kinds are answered
        ``inactive`` (RFC 9429 §5.3.1)."""
        if self._closed:
            raise MediaError(MediaErrorCode.CLOSED, "media engine is closed")
        room = self._rooms.get(room_id)
        if room is None:
            room = self._rooms[room_id] = Room(
                room_id, self.settings, self._signal, self._ice_policy, self._observer,
                self._event, self._media_flowing, self.retired,
            )
        if participant_id in room.participants:
            await room.remove(participant_id)
        if self._observer is not None:
            await self._observer.participant_joined(room_id, participant_id)
        room.participants[participant_id] = Participant(
            room, participant_id, can_publish=can_publish, kinds=frozenset(kinds)
        )
        self._event(room_id, participant_id, "joined", {"can_publish": can_publish})
        logger.info(
            "participant_joined", extra={"room_id": room_id, "participant_id": participant_id}
        )

    async def _signal(self, room_id: str, participant_id: str, message: dict[str, Any]) -> None:
        await self._send_signal(room_id, participant_id, message)

    async def handle_offer(self, room_id: str, participant_id: str, sdp: str) -> str:
        """Apply the client's offer and return the answer SDP (RFC 9429 §5.3)."""
        return await self._participant(room_id, participant_id).handle_offer(sdp)

    async def handle_answer(self, room_id: str, participant_id: str, sdp: str) -> None:
        """Apply the client's answer to a server ``call_offer``."""
        await self._participant(room_id, participant_id).handle_answer(sdp)

    async def add_ice_candidate(
        self, room_id: str, participant_id: str, candidate: dict[str, Any] | None
    ) -> None:
        """Add a trickled remote candidate (``{"candidate", "sdpMid", "sdpMLineIndex"}``)."""
        await self._participant(room_id, participant_id).add_ice_candidate(candidate)

    async def leave(self, room_id: str, participant_id: str) -> None:
        """Close the participant's peer connection; its subscribers keep their (now idle)
        slots, so a rejoin reaches them without renegotiation."""
        room = self._rooms.get(room_id)
        if room is None:
            return
        await room.remove(participant_id)
        if not room.participants and self._rooms.pop(room_id, None) is not None:
            self._room_closed(room_id)
        logger.info(
            "participant_left", extra={"room_id": room_id, "participant_id": participant_id}
        )

    async def close_room(self, room_id: str) -> None:
        """Close every peer connection of the room (``session_end``)."""
        room = self._rooms.pop(room_id, None)
        if room is not None:
            await room.close()
            self._room_closed(room_id)

    def _room_closed(self, room_id: str) -> None:
        if self._observer is not None:
            self._observer.room_closed(room_id)

    async def close(self) -> None:
        self._closed = True
        rooms = list(self._rooms)
        await asyncio.gather(*(self.close_room(r) for r in rooms), return_exceptions=True)
        if self.shared_port is not None:
            self.shared_port.close()

    def tracks(self, room_id: str) -> list[Track]:
        room = self._rooms.get(room_id)
        if room is None:
            return []
        return [t for p in room.participants.values() for t in p.tracks()]

    def stats(self, room_id: str) -> dict[str, Any]:
        """Per participant: bitrate, loss, RTT, packets/frames forwarded, keyframe requests."""
        room = self._rooms.get(room_id)
        if room is None:
            return {}
        return {pid: p.stats() for pid, p in room.participants.items()}

    def participants(self) -> Iterator[tuple[str, Participant]]:
        """(room id, participant) of every participant this node's SFU holds."""
        for room_id, room in self._rooms.items():
            for participant in room.participants.values():
                yield room_id, participant

    @property
    def room_ids(self) -> list[str]:
        return list(self._rooms)
