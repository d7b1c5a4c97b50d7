"""One participant's congestion feedback loop: transport-wide feedback about what it
publishes (``media.twcc``), transport-wide sequence numbers on what it receives and the
feedback about them (``media.transport_seq``, ``media.delay_estimate``), and bandwidth probes
(``media.congestion``).

One negotiated extension id serves both directions: the answer to the client's offer maps it
on every m-section of the BUNDLE group (``aiortc_glue.answer_congestion_control``), the ones
the SFU sends on included, and a server offer adds it to new m-sections
(``aiortc_glue.create_offer``).

Both run on one ``FEEDBACK_INTERVAL_S`` timer per participant, on the grid of
``media.rtcp.rtcp_tick_delay`` so that all participants wake in one loop iteration.
libwebrtc's receiver sends transport-wide feedback every 50–250 ms (more often at higher
rates); 100 ms keeps the browser's delay-based estimator (draft-ietf-rmcat-gcc-02 §5) fed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from media.aiortc_glue import SrtpLink, tap_transport_feedback
from media.congestion import CongestionSettings, Downlink
from media.forwarder import DownTrack, UpTrack
from media.rtcp import rtcp_tick_delay
from media.transport_seq import TransportSequencer
from media.twcc import TransportFeedbackRecorder, parse_feedback, transport_sequence

logger = logging.getLogger(__name__)

FEEDBACK_INTERVAL_S = 0.1
IDLE_INTERVAL_S = 1.0
"""Without transport-cc and with video flowing there is nothing to send: wake less often."""


class ParticipantFeedback:
    """Transport-wide feedback for one participant's published streams and the downlink of
    its subscriptions."""

    def __init__(
        self,
        settings: CongestionSettings,
        start_bps: int,
        on_downlink_change: Callable[[bool], None],
    ) -> None:
        self.downlink = Downlink(settings, start_bps)
        self.recorder = TransportFeedbackRecorder()
        self.extension_id: int | None = None
        """The negotiated id of the transport-wide sequence number extension (RFC 8285)."""
        self.sequencer: TransportSequencer | None = None
        """Numbers what the SFU sends this participant, once the extension is negotiated."""
        self.feedback_sent = 0
        self._on_downlink_change = on_downlink_change
        self._tapped: set[int] = set()

    def negotiated(self, extension_id: int | None, playout_id: int | None = None) -> None:
        """The answer to the client's offer mapped the transport-wide sequence number
        extension to ``extension_id`` (None: not offered), and the playout-delay extension
        to ``playout_id``. The first mapping stays for the session (RFC 8285 §6), and so
        does the sequencer's numbering."""
        if extension_id is None or self.extension_id is not None:
            return
        self.extension_id = extension_id
        self.sequencer = TransportSequencer(extension_id)
        if playout_id is not None:
            self.sequencer.negotiate_playout(playout_id)
        self.downlink.use_delay_based()

    def bind(self, links: Iterable[SrtpLink]) -> None:
        """Number what goes out on ``links`` and read the feedback that comes back on them
        (after each negotiation: a new m-section may bring a new transport)."""
        for link in links:
            link.sequencer = self.sequencer
            if id(link.dtls) not in self._tapped:
                self._tapped.add(id(link.dtls))
                tap_transport_feedback(link.dtls, self.on_transport_feedback)

    def on_transport_feedback(self, data: bytes) -> None:
        """One RTPFB FMT 15 packet from the participant about what the SFU sent it."""
        if self.sequencer is None:
            return
        try:
            report = parse_feedback(data)
        except ValueError:
            logger.debug("transport_feedback_unparsable")
            return
        changed, paused_changed = self.downlink.on_transport_feedback(
            self.sequencer.match(report.arrivals), time.monotonic()
        )
        if changed or paused_changed:
            self._on_downlink_change(paused_changed)

    def on_rtp(self, data: bytes) -> None:
        """Record one received packet's transport-wide sequence number (the fast path: one
        header walk and one list append; only called once the extension is negotiated)."""
        seq = transport_sequence(data, self.extension_id or 0)
        if seq is not None:
            self.recorder.record(seq, time.monotonic_ns() // 1000)

    def watch(self, down: DownTrack) -> None:
        """Feed ``down``'s receiver reports into this participant's downlink."""
        down.downlink = self.downlink
        down.on_downlink_change = self._on_downlink_change

    async def run(
        self,
        published: Callable[[], Iterable[tuple[SrtpLink | None, UpTrack]]],
        subscribed: Callable[[], Iterable[DownTrack]],
    ) -> None:
        """Every ``FEEDBACK_INTERVAL_S``: send the transport-wide feedback (on the transport
        of the first published track: all media is bundled) and any probe padding."""
        loop = asyncio.get_running_loop()
        while True:
            busy = self.extension_id is not None or self.downlink.video_paused
            interval = FEEDBACK_INTERVAL_S if busy else IDLE_INTERVAL_S
            await asyncio.sleep(rtcp_tick_delay(loop.time(), interval))
            await self._send_feedback(published())
            probe = self.downlink.probe_packets(time.monotonic(), FEEDBACK_INTERVAL_S)
            if probe:
                # on the first video track that can carry it (never on audio: Opus
                # receivers would count the padding as lost or late audio)
                for down in subscribed():
                    if down.kind == "video" and down.send_padding(probe):
                        break

    async def _send_feedback(self, published: Iterable[tuple[SrtpLink | None, UpTrack]]) -> None:
        if self.extension_id is None:
            return
        for link, up in published:
            if link is None or up.media_ssrc is None:
                continue
            for packet in self.recorder.feedback(up.rtcp_ssrc, up.media_ssrc):
                self.feedback_sent += 1
                await link.send_rtcp(packet)
            return
