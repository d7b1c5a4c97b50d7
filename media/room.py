"""The SFU's model: ``Room`` → ``Participant`` → ``Track`` (LiveKit's nouns).

A participant owns one aiortc ``RTCPeerConnection`` per room. Every m-section the client
sends on becomes a published ``Track`` (an ``UpTrack`` in the forwarding engine); every
m-section the server may send on is a subscription slot (a ``DownTrack``). A free slot of
the right kind and codec takes the next published track of another participant — which is
how a rejoining publisher's media reaches the others again without renegotiating them.
When a participant has no free slot, the server adds a send-only transceiver and sends a
``call_offer`` (RFC 9429 JSEP §5.2 subsequent offer).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.codecs import CODECS
from aiortc.rtcconfiguration import RTCBundlePolicy
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.sdp import candidate_from_sdp

from core.tasks import TaskSet
from media import aiortc_glue as glue
from media.config import MediaSettings
from media.errors import MediaError, MediaErrorCode
from media.feedback import ParticipantFeedback
from media.forwarder import DownTrack, UpTrack
from media.ice import IcePolicy, apply_ice_policy
from media.observer import MediaObserver
from media.packets import payload_bounds
from media.playout_delay import PLAYOUT_DELAY_URI
from media.quality import downlink_changed
from media.rtcp import rtcp_tick_delay, send_compounds
from media.sdp import validate_sdp
from media.session_events import MediaEventSink, ice_state_data, no_events
from media.stats import ForwardingTotals, participant_stats

logger = logging.getLogger(__name__)

SendSignal = Callable[[str, str, dict[str, Any]], Awaitable[None]]


class ParticipantState(enum.Enum):
    """A participant's state only moves forward (LiveKit); derived: ``is_connected``."""

    JOINED = "joined"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    CLOSED = "closed"


_ORDER = list(ParticipantState)


@dataclass(frozen=True, slots=True)
class Track:
    """A published track as other layers see it."""

    track_id: str
    """``<participant_id>:<mid>``, unique in the room."""
    participant_id: str
    """Who publishes it."""
    kind: str
    """``audio`` or ``video``."""
    codec: str
    """MIME type of the encoded media, e.g. ``video/VP8``."""


def _first_media_codec(codecs: list[RTCRtpCodecParameters]) -> RTCRtpCodecParameters | None:
    return next((c for c in codecs if c.name.lower() != "rtx"), None)


class Participant:
    """One client's presence in a room: its peer connection, tracks and subscriptions."""

    def __init__(
        self, room: Room, participant_id: str, *, can_publish: bool, kinds: frozenset[str]
    ) -> None:
        self.room = room
        self.participant_id = participant_id
        self.can_publish = can_publish
        self.kinds = kinds
        """Media kinds this participant may send or receive at all (the consultation's mode:
        chat none, voice audio, video both); m-sections of other kinds are answered inactive."""
        self.state = ParticipantState.JOINED
        self.joined_at = time.time()
        settings = room.settings
        self._settings = settings
        ice_servers = (
            settings.ice_servers_factory()
            if settings.ice_servers_factory is not None
            else settings.ice_servers
        )
        config = RTCConfiguration(
            iceServers=[RTCIceServer(**s) for s in ice_servers],
            bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
        )
        self.pc = RTCPeerConnection(config)
        self._ice = room.ice_policy
        self._cname = str(uuid.uuid4())
        self._lock = asyncio.Lock()
        self._known: set[RTCRtpTransceiver] = set()
        self.uptracks: dict[RTCRtpTransceiver, UpTrack] = {}
        self.downtracks: dict[RTCRtpTransceiver, DownTrack] = {}
        self._pending: set[DownTrack] = set()
        self._by_ssrc: dict[int, UpTrack] = {}
        self._links: dict[RTCDtlsTransport, glue.SrtpLink] = {}
        self._negotiated_once = False
        self._server_offer_out = False
        self._needs_offer = False
        self._tasks = TaskSet("media_task_failed")
        self.pc.on("connectionstatechange", self._on_connection_state)
        self.pc.on("iceconnectionstatechange",
                   lambda: self._emit("ice_state_changed", ice_state_data(self.pc)))
        self._added_for: dict[RTCRtpTransceiver, str] = {}
        """m-sections the server added to forward a publisher's track: whose they stay."""
        self._media_seen: set[UpTrack] = set()
        """Tracks whose first packet the session log has (``first_media``)."""
        self.feedback = ParticipantFeedback(
            settings.congestion, settings.remb_bitrate_bps, self._downlink_changed
        )
        self._tasks.spawn(self._run_rtcp())
        self._tasks.spawn(self.feedback.run(
            lambda: [(self._links.get(t.receiver.transport), u) for t, u in self.uptracks.items()],
            lambda: list(self.downtracks.values()),
        ))

    # -- state ------------------------------------------------------------------------

    def _set_state(self, state: ParticipantState) -> None:
        if state == self.state or _ORDER.index(state) < _ORDER.index(self.state):
            return
        logger.info(
            "participant_state_changed %s -> %s",
            self.state.value,
            state.value,
            extra={"room_id": self.room.room_id, "participant_id": self.participant_id},
        )
        self.state = state
        self.room.participant_state_changed(self)

    def _downlink_changed(self, paused_changed: bool) -> None:
        notice = downlink_changed(self.room, self, paused_changed)
        if notice is not None:
            self._tasks.spawn(notice)

    def _emit(self, kind: str, data: dict[str, Any]) -> None:
        self.room.on_event(self.room.room_id, self.participant_id, kind, data)

    @property
    def is_connected(self) -> bool:
        return self.state is ParticipantState.CONNECTED

    def _on_connection_state(self) -> None:
        s = self.pc.connectionState
        if s == "connecting":
            self._set_state(ParticipantState.CONNECTING)
        elif s == "connected":
            self._set_state(ParticipantState.CONNECTED)
            if self._needs_offer:
                self._tasks.spawn(self.renegotiate())
        elif s in ("failed", "closed") and self.state is not ParticipantState.CLOSED:
            self._set_state(ParticipantState.DISCONNECTED)
            for down in self.downtracks.values():
                down.deactivate()

    # -- signalling -------------------------------------------------------------------

    async def handle_offer(self, sdp: str) -> str:
        validate_sdp(sdp, "offer")
        async with self._lock:
            self._check_open()
            if self.pc.signalingState == "have-local-offer":
                # We cannot roll back (aiortc); the client is the polite peer (RFC 9429 §4.1.8.2
                # rollback): it drops its offer, answers ours, then offers again.
                raise MediaError(MediaErrorCode.GLARE, "server offer outstanding: answer it first")
            try:
                await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            except MediaError:
                raise
            except Exception as exc:
                raise MediaError(MediaErrorCode.BAD_SDP, f"offer rejected: {exc}") from exc
            self._adopt_transceivers()
            self.feedback.negotiated(glue.answer_congestion_control(self.pc, sdp),
                                     glue.extension_id(self.pc, PLAYOUT_DELAY_URI))
            try:
                answer = await self.pc.createAnswer()
                apply_ice_policy(self.pc, self._ice)
                await self.pc.setLocalDescription(answer)
            except Exception as exc:
                raise MediaError(MediaErrorCode.BAD_SDP, f"cannot answer: {exc}") from exc
            self._negotiation_done()
            return self.pc.localDescription.sdp

    async def handle_answer(self, sdp: str) -> None:
        validate_sdp(sdp, "answer")
        async with self._lock:
            self._check_open()
            if self.pc.signalingState != "have-local-offer":
                raise MediaError(MediaErrorCode.NO_OFFER, "no server offer is outstanding")
            try:
                await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
            except Exception as exc:
                raise MediaError(MediaErrorCode.BAD_SDP, f"answer rejected: {exc}") from exc
            self._server_offer_out = False
            self._negotiation_done()

    async def add_ice_candidate(self, candidate: dict[str, Any] | None) -> None:
        self._check_open()
        if candidate is None or not candidate.get("candidate"):
            return  # aiortc gathers before answering; end-of-candidates needs nothing
        try:
            text = str(candidate["candidate"])
            parsed = candidate_from_sdp(
                text.split(":", 1)[1] if text.startswith("candidate:") else text
            )
            parsed.sdpMid = candidate.get("sdpMid")
            parsed.sdpMLineIndex = candidate.get("sdpMLineIndex")
        except Exception as exc:
            raise MediaError(MediaErrorCode.BAD_CANDIDATE, f"bad candidate: {exc}") from exc
        if self.pc.remoteDescription is None:
            raise MediaError(MediaErrorCode.NO_OFFER, "candidate before any offer")
        try:
            await self.pc.addIceCandidate(parsed)
        except Exception as exc:
            raise MediaError(MediaErrorCode.BAD_CANDIDATE, f"candidate rejected: {exc}") from exc

    def _check_open(self) -> None:
        if self.state is ParticipantState.CLOSED:
            raise MediaError(MediaErrorCode.CLOSED, "participant has left")

    # -- transceivers -> tracks -------------------------------------------------------

    def _adopt_transceivers(self) -> None:
        """Classify new m-sections from the client's offer (RFC 9429 §5.3.1 directions)."""
        for t in self.pc.getTransceivers():
            if t in self._known:
                continue
            self._known.add(t)
            offered = glue.offer_direction(t) or "inactive"  # our view: recvonly = client sends
            allowed = t.kind in self.kinds
            receive = offered in ("recvonly", "sendrecv") and self.can_publish and allowed
            send = offered in ("sendonly", "sendrecv") and allowed
            t.direction = {
                (True, True): "sendrecv",
                (True, False): "sendonly",
                (False, True): "recvonly",
                (False, False): "inactive",
            }[(send, receive)]
            if receive:
                self._add_uptrack(t)
            if send:
                self._add_downtrack(t)

    def _add_uptrack(self, t: RTCRtpTransceiver) -> None:
        codec = _first_media_codec(glue.transceiver_codecs(t))
        if codec is None:
            return
        link_send = self._rtcp_sender(t)
        up = UpTrack(
            f"{self.participant_id}:{t.mid}",
            t.kind,
            codec,
            glue.transceiver_codecs(t),
            publisher_id=self.participant_id,
            rtcp_ssrc=glue.sender_ssrc(t.sender),
            send_rtcp=link_send,
            pli_interval_s=self._settings.pli_interval_s,
            history=self._settings.nack_history,
            remb_bitrate_bps=self._settings.remb_bitrate_bps,
        )
        self.uptracks[t] = up
        glue.take_over_receiver(t.receiver, up.on_rtcp)
        observer = self.room.observer
        if observer is not None:
            up.tap = observer.track_published(
                self.room.room_id, self.participant_id, up.kind, codec.mimeType,
                codec.clockRate, up.request_keyframe, up.is_keyframe,
            )

    def _rtcp_sender(self, t: RTCRtpTransceiver) -> Callable[[bytes], Awaitable[None]]:
        async def send(data: bytes) -> None:
            await self._link(t.receiver.transport).send_rtcp(data)

        return send

    def _add_downtrack(self, t: RTCRtpTransceiver) -> DownTrack:
        down = DownTrack(
            subscriber_id=self.participant_id,
            kind=t.kind,
            ssrc=glue.sender_ssrc(t.sender),
            rtx_ssrc=glue.sender_rtx_ssrc(t.sender),
            codecs=glue.transceiver_codecs(t),
            link=self._link(t.sender.transport),
        )
        self.downtracks[t] = down
        self._pending.add(down)
        glue.take_over_sender(t.sender, down.on_rtcp)
        self.feedback.watch(down)
        return down

    def _link(self, dtls: RTCDtlsTransport) -> glue.SrtpLink:
        link = self._links.get(dtls)
        if link is None:
            link = glue.SrtpLink(dtls)
            self._links[dtls] = link
            on_rtp = self._rtp_handler(dtls)
            glue.tap_rtp(dtls, on_rtp)
            dtls.on("statechange", lambda: self._on_dtls_state(dtls, on_rtp))
        return link

    def _on_dtls_state(self, dtls: RTCDtlsTransport, on_rtp: glue.RtpHandler) -> None:
        self._emit("dtls_state_changed", {"state": dtls.state})
        if dtls.state == "connected":
            glue.receive_srtp(dtls, on_rtp)
            self._activate()
        elif dtls.state in ("closed", "failed"):
            link = self._links.get(dtls)
            if link is not None:
                link.close()
            for down in self.downtracks.values():
                if down.link is link:
                    down.deactivate()

    def _negotiation_done(self) -> None:
        """A description pair is complete: bind transports, refresh codecs, wire the room."""
        self._negotiated_once = True
        for t, down in self.downtracks.items():
            down.link = self._link(t.sender.transport)
            down.set_codecs(glue.transceiver_codecs(t))
        self._pending.clear()
        for t in self.uptracks:
            self._link(t.receiver.transport)
        self.feedback.bind(self._links.values())
        self.room.wire()
        self._activate()
        if self._needs_offer:
            self._tasks.spawn(self.renegotiate())

    def _activate(self) -> None:
        for down in self.downtracks.values():
            if (
                down not in self._pending
                and not down.active
                and down.link.dtls.state == "connected"
            ):
                down.activate()

    def _rtp_handler(self, dtls: RTCDtlsTransport) -> glue.RtpHandler:
        by_ssrc = self._by_ssrc
        feedback = self.feedback

        def on_rtp(data: bytes, arrival_time_ms: int) -> None:
            if len(data) < 12:
                return
            if feedback.extension_id:
                feedback.on_rtp(data)
            ssrc = int.from_bytes(data[8:12], "big")
            up = by_ssrc.get(ssrc)
            if up is None:
                receiver = glue.route(dtls, ssrc, data[1] & 0x7F)
                up = next((u for t, u in self.uptracks.items() if t.receiver is receiver), None)
                if up is None:
                    return
                by_ssrc[ssrc] = up
                self.room.media_arrived(self)  # a new stream's first packet: not per packet
                if up not in self._media_seen:  # a new SSRC: off the per-packet path
                    self._media_seen.add(up)
                    self._emit("first_media", {"track_id": up.track_id, "kind": up.kind,
                                               "codec": up.codec.mimeType})
            start, end = payload_bounds(data)
            up.on_rtp(data, start, end, arrival_time_ms)

        return on_rtp

    # -- subscriptions ----------------------------------------------------------------

    def subscribe(self, up: UpTrack) -> None:
        """Forward ``up`` to this participant: on a free slot, else on a new transceiver."""
        if self.state is ParticipantState.CLOSED or not self._negotiated_once:
            return
        if any(d.source is up for d in self.downtracks.values()):
            return
        for t, down in self.downtracks.items():
            if (
                down.source is None
                and down.can_carry(up)
                and not t.stopped
                and self._added_for.get(t, up.publisher_id) == up.publisher_id
            ):
                down.attach(up)
                return
        self._add_send_transceiver(up)

    def _add_send_transceiver(self, up: UpTrack) -> None:
        t = self.pc.addTransceiver(up.kind, direction="sendonly")
        # The publisher's id is the stream id of the track we describe (msid, RFC 8830 §2): an
        # observer receiving both parties tells them apart by it. The m-section stays that
        # publisher's: after a rejoin their new track takes it, never the other party's.
        glue.set_stream_id(t.sender, up.publisher_id)
        self._added_for[t] = up.publisher_id
        prefs = [
            c
            for c in RTCRtpSender.getCapabilities(up.kind).codecs
            if c.mimeType.lower() == up.codec.mimeType.lower()
            and (c.name.lower() != "h264" or c.parameters == up.codec.parameters)
        ]
        if not prefs:
            prefs = [
                c
                for c in RTCRtpSender.getCapabilities(up.kind).codecs
                if c.mimeType.lower() == up.codec.mimeType.lower()
            ][:1]
        rtx = [c for c in RTCRtpSender.getCapabilities(up.kind).codecs if c.name.lower() == "rtx"]
        t.setCodecPreferences(prefs[:1] + rtx[:1] if up.kind == "video" else prefs[:1])
        glue.set_transceiver_codecs(  # provisional until the answer: attach() picks the PTs
            t, [c for c in CODECS[up.kind] if c.mimeType.lower() == up.codec.mimeType.lower()]
        )
        self._known.add(t)
        down = self._add_downtrack(t)
        down.attach(up)
        self._needs_offer = True
        self._tasks.spawn(self.renegotiate())

    async def renegotiate(self) -> None:
        """Send a subsequent offer (RFC 9429 §5.2.2) when new send slots were added."""
        async with self._lock:
            # Only once connected: then the client has applied our last answer, so a new
            # offer cannot cross it (the server never causes glare itself).
            if (
                not self._needs_offer
                or self.state is ParticipantState.CLOSED
                or self.pc.signalingState != "stable"
                or self.pc.connectionState != "connected"
            ):
                return
            self._needs_offer = False
            offer = await glue.create_offer(self.pc)
            apply_ice_policy(self.pc, self._ice)
            await self.pc.setLocalDescription(offer)
            self._server_offer_out = True
            sdp = self.pc.localDescription.sdp
        await self.room.send_signal(
            self.room.room_id,
            self.participant_id,
            {"type": "call_offer", "data": {"type": "offer", "sdp": sdp}},
        )

    # -- RTCP -------------------------------------------------------------------------

    async def _run_rtcp(self) -> None:
        """Periodic SR/RR/REMB (RFC 3550 §6.2 randomised interval); the reports of all tracks
        on one transport go out as one compound packet (``media.rtcp.send_compounds``)."""
        interval = self._settings.rtcp_interval_s
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(rtcp_tick_delay(loop.time(), interval * (0.5 + random.random())))
            now = time.monotonic()
            reports: list[tuple[glue.SrtpLink, bytes]] = []
            for t, up in list(self.uptracks.items()):
                link = self._links.get(t.receiver.transport)
                packets = up.report(now)
                if packets and link is not None:
                    reports.append((link, b"".join(bytes(p) for p in packets)))
            for down in list(self.downtracks.values()):
                packets = down.report(now, self._cname)
                if packets:
                    reports.append((down.link, b"".join(bytes(p) for p in packets)))
            await send_compounds(reports)

    # -- teardown / stats -------------------------------------------------------------

    async def close(self) -> None:
        self._set_state(ParticipantState.CLOSED)
        await self._tasks.close()
        for up in self.uptracks.values():
            up.close()
        for down in self.downtracks.values():
            down.detach()
            down.deactivate()
        for link in self._links.values():
            link.close()
        await self.pc.close()
        self._by_ssrc.clear()

    def tracks(self) -> list[Track]:
        return [
            Track(up.track_id, self.participant_id, up.kind, up.codec.mimeType)
            for up in self.uptracks.values()
        ]

    def stats(self) -> dict[str, Any]:
        identity = {
            "participant_id": self.participant_id,
            "state": self.state.value,
            "can_publish": self.can_publish,
            "kinds": sorted(self.kinds),
            "connection_state": self.pc.connectionState,
        }
        return participant_stats(
            identity, self.feedback, self.uptracks.values(), self.downtracks.values()
        )


MediaFlowing = Callable[[str], Awaitable[None]]
"""``on_media(room_id)``: the room's call first carried media between two parties (billing
learns that the consultation was served)."""


class Room:
    """Participants of one consultation and the wiring between their tracks."""

    def __init__(
        self,
        room_id: str,
        settings: MediaSettings,
        send_signal: SendSignal,
        ice_policy: IcePolicy,
        observer: MediaObserver | None = None,
        on_event: MediaEventSink = no_events,
        on_media: MediaFlowing | None = None,
        retired: ForwardingTotals | None = None,
    ) -> None:
        self.room_id = room_id
        self.settings = settings
        self.ice_policy = ice_policy
        """Where the participants' ICE agents gather (the node's shared port, if any)."""
        self.send_signal = send_signal
        self.observer = observer
        self.on_event = on_event
        """The room's media events (``MediaEngine._event``: the session log and the observer)."""
        self.on_media = on_media
        self.retired = retired if retired is not None else ForwardingTotals()
        """Where a leaving participant's forwarding counters go (the engine's, for /metrics)."""
        self.participants: dict[str, Participant] = {}
        self._sending = False
        self._flowing = False

    def media_arrived(self, participant: Participant) -> None:
        """A participant's new stream sent its first packet (called once per stream)."""
        self._sending = True
        self._check_flowing(participant)

    def participant_state_changed(self, participant: Participant) -> None:
        if participant.state is ParticipantState.CONNECTED:
            self.wire()
            self._check_flowing(participant)

    def _check_flowing(self, participant: Participant) -> None:
        """The call carries media once a party's media reached the SFU while two parties
        (publishers, not observers) are connected: the other one receives it. A party that only
        listens counts (a silent caller still hears the astrologer); one whose connection never
        came up does not. `on_media` is told once per room."""
        if self._flowing or not self._sending or self.on_media is None:
            return
        connected = [p for p in self.participants.values() if p.can_publish and p.is_connected]
        if len(connected) >= 2:
            self._flowing = True
            participant._tasks.spawn(self.on_media(self.room_id))

    def wire(self) -> None:
        """Subscribe every negotiated participant to every other participant's live tracks."""
        for sub in self.participants.values():
            for pub in self.participants.values():
                if pub is sub:
                    continue
                for up in pub.uptracks.values():
                    if not up.closed:
                        sub.subscribe(up)

    async def remove(self, participant_id: str) -> None:
        """Close the participant's peer connection: a leave, a rejoin's replacement or the
        room closing, each reported ``left``."""
        participant = self.participants.pop(participant_id, None)
        if participant is not None:
            # in the step that unlists it: a scrape never sees its counts in neither place
            self.retired.retire(participant.uptracks.values(), participant.downtracks.values())
            await participant.close()
            self.on_event(self.room_id, participant_id, "left", {})

    async def close(self) -> None:
        for pid in list(self.participants):
            await self.remove(pid)
