"""The SFU's statistics: rate counters of the forwarding engine and the per-participant report
the admin media endpoint returns (``MediaEngine.room_stats``).

Receive statistics follow RFC 3550 §6.4.1 (fraction lost in 1/256 units, interarrival jitter);
this module only reads the counters ``UpTrack`` and ``DownTrack`` keep on the media path.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the forwarder imports RateWindow from here
    from media.feedback import ParticipantFeedback
    from media.forwarder import DownTrack, UpTrack


@dataclass(slots=True)
class RateWindow:
    """Bytes/packets counters with a per-report-interval rate snapshot."""

    bytes: int = 0
    packets: int = 0
    _last_bytes: int = 0
    _last_time: float = 0.0
    bitrate_bps: float = 0.0

    def snapshot(self, now: float) -> None:
        if self._last_time:
            dt = now - self._last_time
            if dt > 0:
                self.bitrate_bps = (self.bytes - self._last_bytes) * 8 / dt
        self._last_bytes = self.bytes
        self._last_time = now


def published_stats(up: UpTrack) -> dict[str, Any]:
    """One published track, as the publisher's side of the SFU received it."""
    return {
        "track_id": up.track_id,
        "kind": up.kind,
        "codec": up.codec.mimeType,
        "bitrate_bps": round(up.rate.bitrate_bps),
        "packets_received": up.rate.packets,
        "bytes_received": up.rate.bytes,
        "packets_lost": up.packets_lost,
        "fraction_lost": up.fraction_lost / 256,
        "jitter_s": up.jitter_s,
        "frames_received": up.frames,
        "keyframes_received": up.keyframes,
        "keyframe_requests_sent": up.plis_sent,
        "nacks_sent": up.nacks_sent,
        "rtx_received": up.rtx_received,
        "subscribers": len(up.downtracks),
        "remb_bps": up.remb_bps if up.is_video else None,
    }


def subscribed_stats(down: DownTrack) -> dict[str, Any]:
    """One subscription slot, as the SFU sent it and the subscriber reported back."""
    return {
        "track_id": down.source.track_id if down.source else None,
        "kind": down.kind,
        "active": down.active,
        "bitrate_bps": round(down.rate.bitrate_bps),
        "packets_forwarded": down.packets,
        "bytes_forwarded": down.bytes,
        "frames_forwarded": down.frames,
        "packets_dropped": down.dropped,
        "send_errors": down.send_errors,
        "nacks_received": down.nacks_received,
        "packets_retransmitted": down.retransmitted,
        "retransmissions_refused": down.retransmits_refused,
        "unrecoverable_nacks": down.unrecoverable,
        "padding_packets_sent": down.padding_sent,
        "paused": down.paused,
        "keyframe_requests_received": down.plis_received + down.firs_received,
        "rtt_s": down.rtt_s,
        "min_playout_delay_ms": down.playout.min_ms,
        "fraction_lost": down.remote_fraction_lost / 256,
        "packets_lost": down.remote_packets_lost,
    }


def quality_stats(
    feedback: ParticipantFeedback, subscribed: list[dict[str, Any]]
) -> dict[str, Any]:
    """Congestion control of the participant's downlink (``media.congestion``: the estimate,
    its loss-based and delay-based halves, the over-use detector's verdict) and the
    transport-wide feedback sent about its uplink (``media.twcc``) and received about its
    downlink (``media.transport_seq``)."""
    downlink = feedback.downlink
    delay = downlink.delay
    forwarded = sum(s["packets_forwarded"] for s in subscribed)
    retransmitted = sum(s["packets_retransmitted"] for s in subscribed)
    return {
        "estimated_bps": downlink.bps,
        "loss_estimated_bps": downlink.estimate.bps,
        "delay_estimated_bps": delay.bps if delay is not None and delay.reports else None,
        "delay_detector": delay.usage.value if delay is not None and delay.reports else None,
        "delay_threshold_ms": delay.threshold_ms if delay is not None and delay.reports else None,
        "transport_cc_feedback_received": delay.reports if delay is not None else 0,
        "target_bps": downlink.target_bps,
        "video_paused": downlink.video_paused,
        "packets_retransmitted": retransmitted,
        "retransmission_rate": retransmitted / forwarded if forwarded else 0.0,
        "transport_cc": feedback.extension_id is not None,
        "transport_cc_feedback_sent": feedback.feedback_sent,
    }


def participant_stats(
    identity: dict[str, Any],
    feedback: ParticipantFeedback,
    uptracks: Iterable[UpTrack],
    downtracks: Iterable[DownTrack],
) -> dict[str, Any]:
    """A participant's report: ``identity`` (id, state, connection state ...), its downlink's
    congestion control, the totals over its tracks (worst loss and round-trip time), then
    each track."""
    published = [published_stats(up) for up in uptracks]
    subscribed = [subscribed_stats(down) for down in downtracks]
    rtts: list[float] = [d["rtt_s"] for d in subscribed if d["rtt_s"] is not None]
    return {
        **identity,
        **quality_stats(feedback, subscribed),
        "bitrate_in_bps": sum(p["bitrate_bps"] for p in published),
        "bitrate_out_bps": sum(s["bitrate_bps"] for s in subscribed),
        "rtt_s": max(rtts) if rtts else None,
        "min_playout_delay_ms": max((s["min_playout_delay_ms"] for s in subscribed), default=0),
        "fraction_lost_in": max((p["fraction_lost"] for p in published), default=0.0),
        "fraction_lost_out": max((s["fraction_lost"] for s in subscribed), default=0.0),
        "frames_forwarded": sum(s["frames_forwarded"] for s in subscribed),
        "packets_forwarded": sum(s["packets_forwarded"] for s in subscribed),
        "keyframe_requests_sent": sum(p["keyframe_requests_sent"] for p in published),
        "keyframe_requests_received": sum(s["keyframe_requests_received"] for s in subscribed),
        "published": published,
        "subscribed": subscribed,
    }


@dataclass(slots=True)
class ForwardingCounters:
    """Monotonic totals of one media kind over every track a node's SFU has had (``/metrics``).

    Read at scrape time from the counters ``UpTrack`` and ``DownTrack`` keep anyway: nothing is
    added to the per-packet path. A participant's tracks are folded into the engine's retired
    totals when it leaves (``ForwardingTotals.retire``), so the sums never go down."""

    packets_received: int = 0
    bytes_received: int = 0
    packets_forwarded: int = 0
    bytes_forwarded: int = 0
    frames_forwarded: int = 0
    packets_dropped: int = 0
    keyframe_requests_received: int = 0
    """PLI and FIR (RFC 4585 §6.3.1, RFC 5104 §4.3.1) from subscribers."""
    keyframe_requests_sent: int = 0
    """PLIs the SFU sent to publishers."""
    nacks_received: int = 0
    """Generic NACKs (RFC 4585 §6.2.1) from subscribers."""
    nacks_sent: int = 0
    """Generic NACKs the SFU sent to publishers."""
    packets_retransmitted: int = 0

    def add_published(self, up: UpTrack) -> None:
        self.packets_received += up.rate.packets
        self.bytes_received += up.rate.bytes
        self.keyframe_requests_sent += up.plis_sent
        self.nacks_sent += up.nacks_sent

    def add_subscribed(self, down: DownTrack) -> None:
        self.packets_forwarded += down.packets
        self.bytes_forwarded += down.bytes
        self.frames_forwarded += down.frames
        self.packets_dropped += down.dropped
        self.keyframe_requests_received += down.plis_received + down.firs_received
        self.nacks_received += down.nacks_received
        self.packets_retransmitted += down.retransmitted


class ForwardingTotals:
    """Per kind, the counters of the tracks of participants that have left."""

    def __init__(self) -> None:
        self.by_kind: dict[str, ForwardingCounters] = {}

    def retire(self, uptracks: Iterable[UpTrack], downtracks: Iterable[DownTrack]) -> None:
        """Keep a leaving participant's counts (called once, as it leaves the room)."""
        _add(self.by_kind, uptracks, downtracks)

    def with_live(
        self, live: Iterable[tuple[Iterable[UpTrack], Iterable[DownTrack]]]
    ) -> dict[str, ForwardingCounters]:
        """The retired totals plus the live participants' (uptracks, downtracks)."""
        totals = {kind: replace(c) for kind, c in self.by_kind.items()}
        for uptracks, downtracks in live:
            _add(totals, uptracks, downtracks)
        return totals


def _add(
    totals: dict[str, ForwardingCounters],
    uptracks: Iterable[UpTrack], downtracks: Iterable[DownTrack],
) -> None:
    for up in uptracks:
        totals.setdefault(up.kind, ForwardingCounters()).add_published(up)
    for down in downtracks:
        totals.setdefault(down.kind, ForwardingCounters()).add_subscribed(down)
