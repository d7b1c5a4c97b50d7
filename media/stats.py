"""Counters of the forwarding engine and the per-participant stats built from them
(``GET /admin/consultations/{id}/media``): receiver-side figures follow RFC 3550 §6.4."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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


def uptrack_stats(up: UpTrack) -> dict[str, Any]:
    """A published track, as its publisher sends it to us."""
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
    }


def downtrack_stats(down: DownTrack) -> dict[str, Any]:
    """A subscribed track, as we forward it (loss and RTT from the subscriber's reports)."""
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
        "keyframe_requests_received": down.plis_received + down.firs_received,
        "rtt_s": down.rtt_s,
        "fraction_lost": down.remote_fraction_lost / 256,
        "packets_lost": down.remote_packets_lost,
    }


def participant_stats(
    participant_id: str,
    state: str,
    can_publish: bool,
    connection_state: str,
    published: list[dict[str, Any]],
    subscribed: list[dict[str, Any]],
) -> dict[str, Any]:
    """One participant: its tracks both ways and the totals an admin looks at first."""
    rtts: list[float] = [d["rtt_s"] for d in subscribed if d["rtt_s"] is not None]
    return {
        "participant_id": participant_id,
        "state": state,
        "can_publish": can_publish,
        "connection_state": connection_state,
        "bitrate_in_bps": sum(p["bitrate_bps"] for p in published),
        "bitrate_out_bps": sum(s["bitrate_bps"] for s in subscribed),
        "rtt_s": max(rtts) if rtts else None,
        "fraction_lost_in": max((p["fraction_lost"] for p in published), default=0.0),
        "fraction_lost_out": max((s["fraction_lost"] for s in subscribed), default=0.0),
        "frames_forwarded": sum(s["frames_forwarded"] for s in subscribed),
        "packets_forwarded": sum(s["packets_forwarded"] for s in subscribed),
        "keyframe_requests_sent": sum(p["keyframe_requests_sent"] for p in published),
        "keyframe_requests_received": sum(s["keyframe_requests_received"] for s in subscribed),
        "published": published,
        "subscribed": subscribed,
    }
