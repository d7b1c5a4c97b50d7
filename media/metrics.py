"""The SFU on ``/metrics``: a collector that reads the engine's existing counters at scrape time.

Nothing here runs per packet: ``UpTrack``/``DownTrack`` count packets, bytes and frames for the
admin media stats anyway, and a scrape sums them (plus the retired totals of participants that
have left, so the counters never go down). Counting in ``prometheus_client`` objects on the
forwarding path would add a lock and a dictionary lookup to every packet.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from media.engine import MEDIA_KINDS, MediaEngine
from media.stats import ForwardingCounters

_Family = CounterMetricFamily | GaugeMetricFamily


@dataclass(frozen=True, slots=True)
class QualityFigure:
    """One per-participant figure of ``Participant.stats()`` exported as a gauge."""

    name: str
    documentation: str
    read: Callable[[dict[str, Any]], float | None]
    """The figure from the participant's stats; None: not known yet (no sample)."""


DETECTOR_VALUES = {"overusing": 1.0, "normal": 0.0, "underusing": -1.0}
"""``media.trendline.Usage`` as a gauge value."""

PARTICIPANT_QUALITY: tuple[QualityFigure, ...] = (
    QualityFigure("kundlinow_media_participant_bitrate_in_bps",
                  "Bitrate the SFU receives from the participant",
                  lambda s: s["bitrate_in_bps"]),
    QualityFigure("kundlinow_media_participant_bitrate_out_bps",
                  "Bitrate the SFU sends to the participant",
                  lambda s: s["bitrate_out_bps"]),
    QualityFigure("kundlinow_media_participant_rtt_seconds",
                  "Worst round-trip time to the participant (RTCP receiver reports)",
                  lambda s: s["rtt_s"]),
    QualityFigure("kundlinow_media_participant_loss_in_ratio",
                  "Worst fraction lost of the participant's published tracks (RFC 3550 6.4.1)",
                  lambda s: s["fraction_lost_in"]),
    QualityFigure("kundlinow_media_participant_loss_out_ratio",
                  "Worst fraction lost the participant reports for what the SFU sends it",
                  lambda s: s["fraction_lost_out"]),
    QualityFigure("kundlinow_media_participant_estimated_bps",
                  "Estimated downlink of the participant (media.congestion)",
                  lambda s: s["estimated_bps"]),
    QualityFigure("kundlinow_media_participant_loss_estimated_bps",
                  "Loss-based half of the participant's downlink estimate (GCC section 6)",
                  lambda s: s["loss_estimated_bps"]),
    QualityFigure("kundlinow_media_participant_delay_estimated_bps",
                  "Delay-based half of the participant's downlink estimate (GCC section 5, "
                  "from its transport-wide feedback; absent without it)",
                  lambda s: s["delay_estimated_bps"]),
    QualityFigure("kundlinow_media_participant_delay_detector",
                  "Over-use detector on the participant's downlink: 1 over-use, 0 normal, "
                  "-1 under-use (absent without transport-wide feedback)",
                  lambda s: DETECTOR_VALUES.get(s["delay_detector"])),
    QualityFigure("kundlinow_media_participant_target_bps",
                  "Bitrate the participant's downlink leaves for a publisher (audio and video)",
                  lambda s: s["target_bps"]),
    QualityFigure("kundlinow_media_participant_video_paused",
                  "1 while video to the participant is paused for a weak downlink",
                  lambda s: float(s["video_paused"])),
    QualityFigure("kundlinow_media_participant_retransmission_ratio",
                  "Packets retransmitted to the participant per packet forwarded to it",
                  lambda s: s["retransmission_rate"]),
    QualityFigure("kundlinow_media_participant_min_playout_delay_seconds",
                  "Minimum playout delay asked of the participant's browser for a lossy, "
                  "distant link (media.playout_delay; 0: none)",
                  lambda s: s["min_playout_delay_ms"] / 1000),
)
"""The per-participant quality gauges, labelled node, room, participant. A new figure of
``media.stats.participant_stats`` is exported by adding one row here and one line to
docs/OPERATIONS.md."""


_COUNTERS: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    ("kundlinow_media_received_packets", "RTP packets received from publishers",
     (("packets_received", ""),)),
    ("kundlinow_media_received_bytes", "RTP bytes received from publishers",
     (("bytes_received", ""),)),
    ("kundlinow_media_forwarded_packets", "RTP packets forwarded to subscribers",
     (("packets_forwarded", ""),)),
    ("kundlinow_media_forwarded_bytes", "RTP bytes forwarded to subscribers",
     (("bytes_forwarded", ""),)),
    ("kundlinow_media_forwarded_frames", "Media frames forwarded to subscribers",
     (("frames_forwarded", ""),)),
    ("kundlinow_media_dropped_packets", "Packets not forwarded to a subscriber (not started "
     "on a key frame, send failure)", (("packets_dropped", ""),)),
    ("kundlinow_media_retransmitted_packets", "Packets resent to subscribers on NACK",
     (("packets_retransmitted", ""),)),
    ("kundlinow_media_keyframe_requests", "Keyframe requests (PLI/FIR): received from "
     "subscribers, sent to publishers",
     (("keyframe_requests_received", "received"), ("keyframe_requests_sent", "sent"))),
    ("kundlinow_media_nacks", "Generic NACKs: received from subscribers, sent to publishers",
     (("nacks_received", "received"), ("nacks_sent", "sent"))),
)
"""(family, help, ((ForwardingCounters field, direction label or "" for none), …)), by kind."""


class MediaCollector(Collector):
    """This node's SFU: rooms, participants, forwarding counters, ICE pairs, quality."""

    def __init__(self, engine: MediaEngine, node: str) -> None:
        self._engine = engine
        self._node = node

    def collect(self) -> Iterator[_Family]:
        node = self._node
        participants = list(self._engine.participants())
        rooms = GaugeMetricFamily("kundlinow_media_rooms", "Rooms whose media this node hosts",
                                  labels=("node",))
        rooms.add_metric((node,), len(self._engine.room_ids))
        yield rooms
        count = GaugeMetricFamily("kundlinow_media_participants",
                                  "Peer connections of this node's SFU", labels=("node",))
        count.add_metric((node,), len(participants))
        yield count
        totals = self._engine.retired.with_live(
            (p.uptracks.values(), p.downtracks.values()) for _, p in participants
        )
        yield from _forwarding(node, totals)
        pairs = CounterMetricFamily(
            "kundlinow_media_ice_selected_pairs",
            "ICE candidate pairs selected, by candidate types (RFC 8445 5.1.1) and transport",
            labels=("node", "local_type", "remote_type", "protocol"),
        )
        for (local, remote, protocol), n in sorted(self._engine.selected_pairs.items()):
            pairs.add_metric((node, local, remote, protocol), n)
        yield pairs
        stats = [(room_id, p.participant_id, p.stats()) for room_id, p in participants]
        for figure in PARTICIPANT_QUALITY:
            family = GaugeMetricFamily(figure.name, figure.documentation,
                                       labels=("node", "room", "participant"))
            for room_id, participant_id, figures in stats:
                value = figure.read(figures)
                if value is not None:
                    family.add_metric((node, room_id, participant_id), value)
            yield family


def _forwarding(node: str, totals: dict[str, ForwardingCounters]) -> Iterator[_Family]:
    for name, documentation, fields in _COUNTERS:
        directed = fields[0][1] != ""
        labels = ("node", "kind", "direction") if directed else ("node", "kind")
        family = CounterMetricFamily(name, documentation, labels=labels)
        for kind in MEDIA_KINDS:
            counters = totals.get(kind, ForwardingCounters())
            for field_name, direction in fields:
                values = (node, kind, direction) if directed else (node, kind)
                family.add_metric(values, getattr(counters, field_name))
        yield family
