"""Congestion control of one subscriber's downlink: estimate, video pause, retransmit budget.

Two estimates of the downlink, combined by taking the smaller (gcc-02 §6; libwebrtc's
``SendSideBandwidthEstimation`` caps its loss-based estimate with the delay-based one):

* **delay-based** (``media.delay_estimate``), when the subscriber negotiated transport-wide
  congestion control (every browser does): the SFU numbers each packet it sends
  (``media.transport_seq``), the subscriber reports when each arrived, and GCC's delay-based
  controller (draft-ietf-rmcat-gcc-02 §5) sees a bottleneck's queue grow before it drops;
* **loss-based** (``DownlinkEstimate``), from what every subscriber (aiortc too) sends:
  receiver reports (RFC 3550 §6.4.2: fraction lost, LSR/DLSR for the round-trip time) and
  NACKs. It is GCC's loss-based controller (draft-ietf-rmcat-gcc-02 §6; the sender side of
  libwebrtc's ``SendSideBandwidthEstimation``):

  * fraction lost ``p`` > 10 %: ``A ← A · (1 − p/2)``, at most once per 300 ms + RTT (one
    report interval of the losses that caused it, as libwebrtc does);
  * ``p`` < 2 %: ``A ← A · 1.05`` per second of reports (scaled by the time since the last);
  * otherwise ``A`` holds.

A loss window of the feedback with ≥ 20 % lost (a queue the sender overflowed) also caps the
loss-based estimate at 0.85 × what that window delivered (``DeliveredRate``), the GCC
over-use decrease on the one rate that is current: a cap that drops from 1.5 Mbit/s to
120 kbit/s is then reached in one window instead of the ~2 s of halving cuts that lost the
audio queued behind the video.

With transport feedback flowing, the loss-based controller takes its loss from the feedback
(every packet, ten reports a second) instead of the receiver reports, works on the combined
estimate (it is capped by the delay-based one, as libwebrtc caps its target with the
delay-based limit), and the delay-based AIMD follows each of its cuts
(``Downlink.on_transport_feedback``). A subscriber without transport-cc (an aiortc peer) has
the loss-based estimate alone.

A subscriber's REMB (draft-alvestrand-rmcat-remb-03) is deliberately not an input. Chromium
sends one from its receive-side estimator, which measures the stream it is given: libwebrtc's
``AimdRateControl`` never rises above 1.5 × the incoming rate and, on a delay spike, falls to
0.85 × it. Here the incoming rate is what the publisher was told to send, and that is below
the estimate (audio and retransmission headroom), so a REMB used as a cap closes a loop with
a gain under one: every dip ratchets the publisher down, a pause leaves only audio to measure,
and the estimate ends at its minimum on a clean link (bench/netq.py, issue 16). The SFU's own
delay-based estimate has the same 1.5 × bound, but on what *it* sent, which with the 0.8 share
and the audio still gives the loop a gain above one.

``Downlink`` turns the estimate into decisions (RFC 8836 §2 asks the same of any
congestion controller: reduce under loss, keep audio):

* below ``floor_bps`` the subscriber's video is paused (audio goes on); while paused, short
  padding probes (RFC 3550 §5.1 P bit, on the video SSRC) ask the link for
  ``PROBE_FACTOR × resume_bps``; a probe that went through loss-free, and during which the
  delay-based detector saw no over-use, raises both estimates to ``resume_bps`` and video
  resumes from a keyframe. With transport-wide feedback the verdict comes from the feedback
  on the probe's own packets, as soon as a packet sent after the probe is reported (within a
  feedback interval of its end: the tail, where a full queue drops, is covered); without it,
  from the first receiver report sent after the probe (up to a report interval later);
* while video flows but the SFU sends well under the estimate (application-limited:
  ``AlrDetector``, after libwebrtc's, on what the feedback reports sent over the last
  second; in below 2/3 of the estimate, out above 0.75 ×), probes of the same kind ask for
  ``ALR_PROBE_FACTOR`` × the estimate (capped at the ceiling) every ``ALR_PROBE_PERIOD_S``,
  as libwebrtc's ``ProbeController`` does in ALR; their padding goes on the RTX SSRC
  (``DownTrack.send_padding``). One that passes raises both estimates to what it sent.
  This is what lifts an estimate that fell once: the publisher sends less than it is told
  (its target is 0.8 × the estimate, audio included; its encoder often less still) and the
  delay-based AIMD never rises above 1.5 × what was acknowledged (gcc-02 §5.5 bounds its
  increase by the received rate; bench/netq.py: 250 kbit/s for 45 s on a clean link). A
  failed probe doubles the period (up to 60 s): on a narrow link an undershooting encoder is
  application-limited too, and each of its probes overflows the queue for a few hundred
  milliseconds. Such a probe's padding stops at the first over-use or lossy window, and
  until its verdict the estimates hold where they were when it started: the congestion it
  provoked judges the probe's rate, not the estimate (a paused probe does neither: see
  ``_judge_probe``);
* retransmissions (RFC 4588) draw on a token bucket filled at ``rtx_share`` of the estimate;
* the publisher's target (its REMB, for audio and video together) is the estimate minus
  that share.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from media.aimd import BETA
from media.delay_estimate import OVERFLOW_LOSS, DelayBasedEstimate
from media.transport_seq import SentPacket

LOSS_HIGH = 0.10
LOSS_LOW = 0.02
INCREASE_PER_S = 1.05
MIN_DECREASE_INTERVAL_S = 0.3
MIN_ESTIMATE_BPS = 30_000
LOSS_WINDOW_PACKETS = 20
"""The fewest packets a loss fraction is taken over (libwebrtc's ``kLimitNumPackets``)."""
PROBE_PERIOD_S = 3.0
PROBE_DURATION_S = 1.0
PROBE_FACTOR = 1.25
"""A probe asks for this much more than ``resume_bps``: long and high enough to overflow a
link's burst allowance and queue when it cannot carry the resume rate."""
PROBE_PACKET_BYTES = 12 + 255
"""A padding-only packet: RTP header and the most padding one byte can count (RFC 3550 §5.1)."""
ALR_WINDOW_S = 1.0
"""What the SFU sent is measured over this much of its send time."""
ALR_ENTER = 2 / 3
"""Below this share of the estimate sent, the sender is application-limited. The delay-based
AIMD never rises above 1.5 × the acknowledged throughput + 10 kbit/s, so an estimate it holds
at that bound has less than 2/3 of it sent: a sender there cannot lift it by itself however
clean the link, only a probe can. A publisher using its whole target sends 0.8 × the
estimate, audio included, so a link-limited sender stays above this; the stuck clean call of
bench/netq.py sent ~85k of video and ~45k of audio against 250k (0.54)."""
ALR_LEAVE = 0.75
"""Above this share the sender uses its target again (hysteresis: a keyframe, or the noise of
one second's frame sizes, does not flip the state back and forth)."""
ALR_PROBE_PERIOD_S = 5.0
"""Application-limited, a probe every this many seconds (libwebrtc's ``ProbeController``:
``alr_probing_interval`` 5 s), and only this long after an over-use."""
ALR_MAX_PROBE_PERIOD_S = 60.0
"""A failed probe doubles the period up to this: a probe that fails overflowed a queue."""
ALR_PROBE_FACTOR = 2.0
"""An application-limited probe asks for this × the estimate (libwebrtc's
``alr_probe_scale``), capped at the ceiling."""


@dataclass(frozen=True, slots=True)
class CongestionSettings:
    """The budgets of ``Downlink`` (``MediaSettings`` builds it)."""

    enabled: bool = False
    """The receiver drives the sender (``MEDIA_CONGESTION_CONTROL``): the estimate retargets
    the publishers' REMB, pauses video below ``floor_bps`` and probes to resume it. Off: the
    estimate is only reported (stats, ``/metrics``); publishers keep the configured REMB,
    video is never paused, and retransmissions keep the deadline, the count per packet and
    the share of the starting estimate."""
    floor_bps: int = 185_000
    """Below this estimate a subscriber's video is paused: it leaves the video less than
    100 kbit/s (0.8 × 185k less the ~48k of audio). Less than that plays as a slide show: at
    120 kbit/s (bench.netq down120) the estimate settled at 167 kbit/s with the caller's
    encoder at its 30 kbit/s minimum — no longer any loss to push it lower — and 640×480
    video froze ten times in 45 s instead of pausing."""
    resume_bps: int = 250_000
    """A paused subscriber's video resumes once the estimate reaches this."""
    audio_bps: int = 48_000
    """What the subscriber's audio takes of its downlink (Opus at its default rate, with FEC,
    and packet overhead): a paused probe's padding leaves it room."""
    rtx_share: float = 0.2
    """Share of the estimate retransmissions may use (and the publisher leaves free)."""


class DownlinkEstimate:
    """GCC's loss-based controller (draft-ietf-rmcat-gcc-02 §6)."""

    def __init__(self, start_bps: int) -> None:
        self.ceiling_bps = start_bps
        self.loss_bps = float(start_bps)
        self._last_report: float | None = None
        self._last_decrease = float("-inf")

    @property
    def bps(self) -> int:
        return int(self.loss_bps)

    def on_loss(self, fraction_lost: float, rtt_s: float | None, now: float) -> None:
        """One receiver report's fraction lost (0..1)."""
        elapsed = 1.0 if self._last_report is None else min(1.0, now - self._last_report)
        self._last_report = now
        if fraction_lost > LOSS_HIGH:
            if now - self._last_decrease >= MIN_DECREASE_INTERVAL_S + (rtt_s or 0.0):
                self._last_decrease = now
                self.loss_bps = max(MIN_ESTIMATE_BPS, self.loss_bps * (1 - fraction_lost / 2))
        elif fraction_lost < LOSS_LOW:
            self.loss_bps = min(self.ceiling_bps, self.loss_bps * INCREASE_PER_S**elapsed)

    def raise_to(self, bps: float) -> None:
        """A probe at ``bps`` went through without loss."""
        self.loss_bps = min(self.ceiling_bps, max(self.loss_bps, bps))


class LossWindow:
    """One stream's fraction lost over at least ``LOSS_WINDOW_PACKETS`` packets, from its
    report blocks' extended highest sequence number and cumulative number lost (RFC 3550
    §6.4.1), as libwebrtc's ``SendSideBandwidthEstimation::UpdatePacketsLost`` does.

    A report block's own fraction lost covers the interval since the receiver's previous
    report, and Chromium sends a receiver report with every NACK: on a lossy link tens of
    milliseconds apart, each over two to five packets, so its fraction reads 0 or 25-75 %
    and every other report would look like a collapse."""

    def __init__(self) -> None:
        self._base: tuple[int, int] | None = None

    def fraction(self, highest_seq: int, cumulative_lost: int) -> float | None:
        """The fraction lost since the last one returned; None until enough packets."""
        if self._base is None or highest_seq < self._base[0]:
            self._base = (highest_seq, cumulative_lost)
            return None
        expected = highest_seq - self._base[0]
        if expected < LOSS_WINDOW_PACKETS:
            return None
        lost = cumulative_lost - self._base[1]
        self._base = (highest_seq, cumulative_lost)
        return min(1.0, max(0, lost) / expected)


class RetransmitBudget:
    """Token bucket of bytes for retransmissions: ``share`` of the estimate, 0.5 s deep."""

    def __init__(self) -> None:
        self.rate_bytes_s = 0.0
        self._tokens = 0.0
        self._time = time.monotonic()

    def set_rate(self, bps: float) -> None:
        self.rate_bytes_s = bps / 8

    def take(self, size: int, now: float) -> bool:
        depth = self.rate_bytes_s / 2
        self._tokens = min(depth, self._tokens + (now - self._time) * self.rate_bytes_s)
        self._time = now
        if self._tokens < size:
            return False
        self._tokens -= size
        return True


class DeliveredRate:
    """What arrived in a loss window: bytes over the span of their arrival times (the
    receiver's clock). While a queue overflows, the link is busy the whole time and that is
    its rate, however much more was sent (the send times would also count the sender's own
    pauses and bursts)."""

    MIN_SPAN_US = 20_000
    """A shorter span (two packets of one burst) says nothing about a rate."""

    def __init__(self) -> None:
        self._bytes = 0
        self._first_us: int | None = None
        self._first_size = 0
        self._last_us = 0

    def add(self, packets: list[SentPacket]) -> None:
        for packet in packets:
            arrival = packet.arrival_us
            if arrival is None:
                continue
            self._bytes += packet.size
            if self._first_us is None or arrival < self._first_us:
                self._first_us, self._first_size = arrival, packet.size
            self._last_us = max(self._last_us, arrival)

    def take(self) -> float | None:
        """bit/s over the window so far, then start a new one; None if its span was too
        short. The first arrival opens the span: its bytes came before it."""
        first = self._first_us
        span_us = self._last_us - first if first is not None else 0
        delivered = None
        if span_us >= self.MIN_SPAN_US:
            delivered = (self._bytes - self._first_size) * 8e6 / span_us
        self._bytes, self._first_us, self._first_size, self._last_us = 0, None, 0, 0
        return delivered


class SentRate:
    """What the SFU sent one subscriber over the last ``ALR_WINDOW_S`` of its send clock,
    from the packets the transport feedback reports (lost ones too: they were sent)."""

    def __init__(self) -> None:
        self._packets: deque[tuple[int, int]] = deque()
        self._bytes = 0
        self._first_us: int | None = None
        self._newest_us = 0

    def add(self, packets: list[SentPacket]) -> None:
        for packet in packets:
            self._packets.append((packet.send_us, packet.size))
            self._bytes += packet.size
            self._newest_us = max(self._newest_us, packet.send_us)
            if self._first_us is None:
                self._first_us = packet.send_us
        start_us = self._newest_us - int(ALR_WINDOW_S * 1_000_000)
        while self._packets and self._packets[0][0] <= start_us:
            self._bytes -= self._packets.popleft()[1]

    @property
    def bps(self) -> float | None:
        """None until the feedback has covered a whole window."""
        first = self._first_us
        if first is None or self._newest_us - first < ALR_WINDOW_S * 1_000_000:
            return None
        return self._bytes * 8 / ALR_WINDOW_S


class AlrDetector:
    """Whether the SFU sends a subscriber well under its estimate: application-limited, as
    libwebrtc's ``AlrDetector`` (whose budget fills at 0.65 × the target) tells its
    ``ProbeController``. Enter below ``ALR_ENTER`` × the estimate, leave above
    ``ALR_LEAVE`` × it (see there for why)."""

    def __init__(self) -> None:
        self.sent = SentRate()
        self.limited = False

    def on_sent(self, packets: list[SentPacket], estimate_bps: int) -> None:
        self.sent.add(packets)
        sent = self.sent.bps
        if sent is None:
            return
        if self.limited and sent > ALR_LEAVE * estimate_bps:
            self.limited = False
        elif not self.limited and sent < ALR_ENTER * estimate_bps:
            self.limited = True


class Downlink:
    """One subscriber's downlink: its estimate, whether its video is paused, its probes and
    its retransmission budget."""

    def __init__(self, settings: CongestionSettings, max_target_bps: int) -> None:
        """``max_target_bps``: the most a publisher is asked to send (audio and video); the
        estimate starts at (and never exceeds) what that needs with the retransmission
        headroom."""
        self.settings = settings
        start_bps = int(max_target_bps / (1 - settings.rtx_share)) + 1
        self.estimate = DownlinkEstimate(start_bps)
        self.delay: DelayBasedEstimate | None = None
        """The delay-based estimate, once transport-wide feedback is negotiated."""
        self._feedback_total = 0
        self._feedback_lost = 0
        self._delivered = DeliveredRate()
        self.budget = RetransmitBudget()
        self.budget.set_rate(start_bps * settings.rtx_share)
        self.video_paused = False
        self.rtt_s: float | None = None
        self.alr = AlrDetector()
        self._alr_period_s = ALR_PROBE_PERIOD_S
        """The application-limited probes' period: doubled by each that fails."""
        self._probe_start = 0.0
        self._probe_open = False
        """A probe was sent and has no verdict yet."""
        self._probe_failed = False
        """The open probe's padding stopped: it has queued up or lost packets."""
        self._probe_alr = False
        """The last probe was sent while application-limited (else: while paused)."""
        self._probe_bps = 0.0
        """What a probe that passes shows the link carries: the estimates rise to it."""
        self._padding_bps = 0.0
        """The open probe's padding rate."""
        self._before_probe_bps = 0
        """The estimate when the open probe started."""
        self._probe_packets = 0
        self._probe_lost = 0
        self._probe_bytes = 0
        """Of the packets sent during the open probe, those the feedback reported, the lost
        ones, and the bytes of all."""
        self._paused_at = 0.0

    @property
    def bps(self) -> int:
        """The estimate: the smaller of the loss-based and the delay-based one."""
        delay = self.delay
        loss = self.estimate.bps
        return loss if delay is None else min(loss, delay.bps)

    @property
    def target_bps(self) -> int:
        """What a publisher may send to this subscriber, audio and video together: the
        estimate less the retransmission share. It is the publisher's REMB, and a browser
        counts a REMB against everything it sends (libwebrtc's send-side estimator takes it
        as the receiver's estimate for the whole transport; its ``BitrateAllocator`` gives
        the audio its share first, the video the rest). Less the audio as well, the audio
        was counted twice: a 400 kbit/s downlink (estimate ~320k) got REMB 200k and a
        caller's video of 130 kbit/s (bench/netq.py down400)."""
        return max(MIN_ESTIMATE_BPS, int(self.bps * (1 - self.settings.rtx_share)))

    def use_delay_based(self) -> None:
        """The subscriber negotiated transport-wide feedback: start the delay-based estimate
        (at the loss-based one's ceiling, so that it only ever lowers the minimum)."""
        if self.delay is None:
            ceiling = self.estimate.ceiling_bps
            self.delay = DelayBasedEstimate(ceiling, MIN_ESTIMATE_BPS, ceiling)

    def on_transport_feedback(self, packets: list[SentPacket], now: float) -> tuple[bool, bool]:
        """One transport-wide feedback report's packets, received at ``now``
        (``time.monotonic()``). Returns (the estimate changed, the paused state changed).

        The report's lost packets feed the loss-based estimate too, in place of the receiver
        reports' (as libwebrtc takes loss from transport feedback when it has it): ten reports
        a second over every packet sent, instead of one a second per stream. The delay-based
        controller follows a loss-based decrease (``DelayBasedEstimate.on_loss_event``): a
        standing queue — filled before the trendline had its 20 groups, or by a sender that
        jumped far above the link — shows no delay trend, only drops."""
        delay = self.delay
        if delay is None:
            return False, False
        before = self.bps
        delay.on_report(packets, now, self.rtt_s)
        # the loss-based controller acts on the combined estimate, as libwebrtc's does on its
        # target capped by the delay-based limit: a cut under loss then bites at once, and
        # an increase is at most the loss-based 5 %/s however fast the AIMD climbs
        self.estimate.loss_bps = min(self.estimate.loss_bps, delay.bps)
        self._feedback_total += len(packets)
        self._feedback_lost += sum(1 for p in packets if p.arrival_us is None)
        self._delivered.add(packets)
        if self._feedback_total >= LOSS_WINDOW_PACKETS:
            fraction = self._feedback_lost / self._feedback_total
            self._feedback_total = self._feedback_lost = 0
            delivered = self._delivered.take()
            loss_before = self.estimate.loss_bps
            self.estimate.on_loss(fraction, self.rtt_s, now)
            if fraction >= OVERFLOW_LOSS and delivered is not None:
                # an overflowing queue: the link carried what arrived, whatever was sent.
                # Without this cap the cuts of at most half take ~2 s from 1.5 Mbit/s down
                # to a 120 kbit/s link, all of it lost audio (bench/netq.py down120).
                # 0.85 × it, as an over-use is (gcc-02 §5.5): below the link, the queue drains
                self.estimate.loss_bps = max(
                    MIN_ESTIMATE_BPS, min(self.estimate.loss_bps, BETA * delivered)
                )
            if self.estimate.loss_bps < loss_before:
                # a queue overflowed (or the radio lost packets): the AIMD follows the cut
                delay.on_loss_event(self.estimate.loss_bps, fraction, now)
        self.alr.on_sent(packets, self.bps)
        if self._probe_open:
            if self._probe_alr:
                # the over-use or loss an application-limited probe provokes says the link
                # does not carry the probe's rate, not that it no longer carries the
                # estimate: until its verdict the estimates stay at least where they were
                # when it started. Else a failed probe cuts the estimate to 0.85 × what was
                # sent: half of it (gccsim: 1 Mbit/s to 480 kbit/s on a 2 Mbit/s link; a video
                # pause on a 400 kbit/s one). A congested link shows it again in the next
                # reports
                self._raise_estimates(self._before_probe_bps, now)
            self._judge_probe(packets, now)
        return self.bps != before, self._update(now)

    def _judge_probe(self, packets: list[SentPacket], now: float) -> None:
        """Count the open probe's packets in this report; its verdict is in once a packet
        sent after it has arrived (its tail, where a full queue drops, is covered). An
        application-limited probe's padding stops as soon as the delay-based detector says
        over-use or a loss window of its packets loses ``LOSS_LOW``: more only fills the
        queue in front of the video. A paused probe runs its whole second, as it did before
        these probes existed (there is no video to spare; with the early stop, the hold and
        the feedback-only verdict applied to it too, bench/netq.py down120 never resumed
        after its cap was lifted, which of the three did it was not traced)."""
        start_us = int(self._probe_start * 1_000_000)
        end_us = start_us + int(PROBE_DURATION_S * 1_000_000)
        covered = False
        for packet in packets:
            if start_us <= packet.send_us < end_us:
                self._probe_packets += 1
                self._probe_bytes += packet.size
                if packet.arrival_us is None:
                    self._probe_lost += 1
            elif packet.send_us >= end_us and packet.arrival_us is not None:
                covered = True
        lossy = self._probe_lost >= LOSS_LOW * self._probe_packets
        self._probe_failed = self._probe_alr and (
            self._probe_failed
            or self._probe_overused()
            or (lossy and self._probe_packets >= LOSS_WINDOW_PACKETS)
        )
        if covered:
            self._close_probe(not (self._probe_failed or lossy or self._probe_overused()), now)

    def _probe_overused(self) -> bool:
        """The delay-based detector saw over-use since the probe started: it queued up in a
        bottleneck, even if nothing was lost yet."""
        delay = self.delay
        return (
            delay is not None
            and delay.last_overuse is not None
            and delay.last_overuse >= self._probe_start
        )

    def _close_probe(self, passed: bool, now: float) -> None:
        """The open probe's verdict. Passed: both estimates rise to what it asked for (an
        application-limited probe: or to what was sent during it if less went out, as
        padding that found no track to go on proves nothing). An application-limited probe
        sets the next one's period."""
        self._probe_open = False
        if passed:
            sent_bps = self._probe_bytes * 8 / PROBE_DURATION_S
            self._raise_estimates(
                min(self._probe_bps, sent_bps) if self._probe_alr else self._probe_bps, now
            )
        if self._probe_alr:
            self._alr_period_s = (
                ALR_PROBE_PERIOD_S if passed
                else min(ALR_MAX_PROBE_PERIOD_S, 2 * self._alr_period_s)
            )

    def _raise_estimates(self, bps: float, now: float) -> None:
        """A probe showed the link carries ``bps``: both estimates rise to it."""
        self.estimate.raise_to(bps)
        if self.delay is not None:
            self.delay.raise_to(bps, now)

    def on_report(self, fraction_lost: float, rtt_s: float | None, probed: bool) -> bool:
        """A receiver report block for one of the subscriber's streams; ``probed``: it covers
        a padding probe sent while paused. True if the paused state changed."""
        now = time.monotonic()
        self.rtt_s = rtt_s
        feedback = self.delay is not None and self.delay.reports > 0
        # a report on the video stream judges a paused probe, whose padding it covers (an
        # application-limited probe's padding is on the RTX SSRC: only the transport feedback
        # does), also where the feedback judges it too: on Chromium the feedback's verdict
        # alone left video paused after down120's cap was lifted (bench/netq.py). Only a
        # report sent after the probe ended covers its tail, where a full queue drops
        if (
            probed
            and fraction_lost < LOSS_LOW
            and now >= self._probe_start + PROBE_DURATION_S
            and not self._probe_overused()
        ):
            self._raise_estimates(self.settings.resume_bps, now)
        if not feedback:  # else the feedback's loss counts
            self.estimate.on_loss(fraction_lost, rtt_s, now)
        return self._update(now)

    def _update(self, now: float) -> bool:
        if not self.settings.enabled:
            return False
        bps = self.bps
        self.budget.set_rate(bps * self.settings.rtx_share)
        if not self.video_paused and bps < self.settings.floor_bps:
            self.video_paused = True
            self._paused_at = now
            return True
        if self.video_paused and bps >= self.settings.resume_bps:
            self.video_paused = False
            return True
        return False

    def probe_packets(self, now: float, tick_s: float) -> int:
        """Padding packets to send in this tick of ``tick_s``: ``PROBE_DURATION_S`` of them
        once a probe is due, until its verdict, at the open probe's padding rate."""
        if self._paused_probe_due(now):
            padding = self.settings.resume_bps * PROBE_FACTOR - self.settings.audio_bps
            self._open_probe(now, self.settings.resume_bps, padding, alr=False)
        elif self._alr_probe_due(now):
            probe_bps = min(ALR_PROBE_FACTOR * self.bps, self.estimate.ceiling_bps)
            self._open_probe(now, probe_bps, probe_bps - (self.alr.sent.bps or 0.0), alr=True)
        if (
            not self._probe_open
            or self._probe_failed
            or now - self._probe_start >= PROBE_DURATION_S
        ):
            return 0
        return max(1, round(self._padding_bps / 8 * tick_s / PROBE_PACKET_BYTES))

    def _paused_probe_due(self, now: float) -> bool:
        """Paused: a probe at ``PROBE_FACTOR × resume_bps`` less the audio, for
        ``PROBE_DURATION_S`` of every ``PROBE_PERIOD_S``, from a second after the pause."""
        return (
            self.video_paused
            and now - self._probe_start >= PROBE_PERIOD_S
            and now - self._paused_at >= 1.0
        )

    def _alr_probe_due(self, now: float) -> bool:
        """Video flowing but application-limited (``AlrDetector``), the estimate below its
        ceiling: a probe at ``ALR_PROBE_FACTOR`` × the estimate, padding up to it from what
        is sent, every ``ALR_PROBE_PERIOD_S`` (more after failures) and not within
        ``ALR_PROBE_PERIOD_S`` of an over-use or a loss-based cut (``last_overuse``: the link
        just said it is full). Only with transport feedback: a receiver report on the video
        SSRC does not cover the padding, and its verdict would come a report interval late."""
        delay = self.delay
        return (
            self.settings.enabled
            and delay is not None
            and not self.video_paused
            and self.alr.limited
            and self.bps < self.estimate.ceiling_bps
            and now - self._probe_start >= self._alr_period_s
            and (delay.last_overuse is None or now - delay.last_overuse >= ALR_PROBE_PERIOD_S)
        )

    def _open_probe(self, now: float, probe_bps: float, padding_bps: float, alr: bool) -> None:
        self._probe_start = now
        self._probe_open = True
        self._probe_failed = False
        self._probe_alr = alr
        self._probe_bps = probe_bps
        self._before_probe_bps = self.bps
        self._padding_bps = max(0.0, padding_bps)
        self._probe_packets = self._probe_lost = self._probe_bytes = 0
