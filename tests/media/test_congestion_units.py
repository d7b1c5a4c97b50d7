"""The downlink estimate and its decisions (media.congestion), without a network."""

from __future__ import annotations

import itertools
import time

import pytest

from media.congestion import (
    MIN_DECREASE_INTERVAL_S,
    PROBE_DURATION_S,
    PROBE_PACKET_BYTES,
    PROBE_PERIOD_S,
    AlrDetector,
    CongestionSettings,
    DeliveredRate,
    Downlink,
    DownlinkEstimate,
    LossWindow,
    RetransmitBudget,
)
from media.transport_seq import SentPacket


def test_loss_above_ten_percent_cuts_by_half_the_loss_at_most_once_per_interval() -> None:
    est = DownlinkEstimate(1_000_000)
    est.on_loss(0.4, rtt_s=0.1, now=10.0)
    assert est.bps == 800_000
    est.on_loss(0.4, rtt_s=0.1, now=10.0 + MIN_DECREASE_INTERVAL_S)  # < 300 ms + RTT
    assert est.bps == 800_000
    est.on_loss(0.4, rtt_s=0.1, now=10.5)
    assert est.bps == 640_000


def test_low_loss_grows_five_percent_per_second_up_to_the_ceiling_and_holds_between() -> None:
    est = DownlinkEstimate(1_000_000)
    est.on_loss(0.5, None, now=0.0)
    assert est.bps == 750_000
    est.on_loss(0.0, None, now=1.0)
    assert est.bps == pytest.approx(787_500, abs=1)
    est.on_loss(0.05, None, now=2.0)  # between 2 and 10 %: hold
    assert est.bps == pytest.approx(787_500, abs=1)
    for t in range(3, 40):
        est.on_loss(0.0, None, now=float(t))
    assert est.bps == 1_000_000


def test_budget_allows_its_share_and_refills() -> None:
    budget = RetransmitBudget()
    budget.set_rate(80_000)  # 10 000 bytes/s, bucket 5 000 bytes
    assert budget.take(1000, now=budget._time + 1.0)
    taken = sum(budget.take(1000, now=budget._time) for _ in range(10))
    assert taken == 4  # what was left of the 0.5 s bucket
    assert not budget.take(1000, now=budget._time + 0.05)  # 50 ms refills 500 bytes
    assert budget.take(1000, now=budget._time + 0.06)  # 110 ms: 1100 bytes


def test_pause_below_the_floor_probe_and_resume() -> None:
    settings = CongestionSettings(
        enabled=True, floor_bps=150_000, resume_bps=250_000, audio_bps=48_000
    )
    down = Downlink(settings, 272_000)  # estimate (272k + 48k) / 0.8 = 400k
    assert not down.video_paused and down.probe_packets(0.0, 0.1) == 0
    changed = [down.on_report(0.9, 0.05, probed=False) for _ in range(1)]
    assert changed == [False]  # 400k -> 220k
    down.estimate._last_decrease = -10.0
    assert down.on_report(0.9, 0.05, probed=False) is True  # 220k -> 121k: paused
    assert down.video_paused
    assert down.target_bps >= 30_000
    paused_at = down._paused_at
    # probing starts a second after the pause, for PROBE_DURATION_S of every PROBE_PERIOD_S
    assert down.probe_packets(paused_at + 0.5, 0.1) == 0
    sent = down.probe_packets(paused_at + 1.0, 0.1)
    assert sent == round((250_000 * 1.25 - 48_000) / 8 * 0.1 / (12 + 255))
    assert down.probe_packets(paused_at + 1.0 + PROBE_DURATION_S, 0.1) == 0
    assert down.probe_packets(paused_at + 1.0 + PROBE_PERIOD_S, 0.1) > 0
    # a lossy probe keeps it paused, a clean one resumes
    down.estimate._last_decrease = -10.0
    assert down.on_report(0.5, 0.05, probed=True) is False
    down._probe_start = time.monotonic() - 0.1  # a report during the probe: no verdict
    assert down.on_report(0.0, 0.05, probed=True) is False
    down._probe_start = time.monotonic() - PROBE_DURATION_S  # one after it: resume
    assert down.on_report(0.0, 0.05, probed=True) is True
    assert not down.video_paused and down.estimate.bps >= 250_000


def test_the_default_floor_pauses_when_under_100_kbit_s_would_be_left_for_video() -> None:
    """bench.netq down120 once settled at 167 kbit/s: the link no longer overloaded (the
    encoder at its minimum), no estimator went lower, and the video froze instead of pausing."""
    down = Downlink(CongestionSettings(enabled=True), 1_000_000)
    down.estimate.loss_bps = 190_000
    assert down.on_report(0.05, 0.05, probed=False) is False  # 5 % loss: the estimate holds
    audio = down.settings.audio_bps  # the target is audio and video: video gets the rest
    assert not down.video_paused and down.target_bps - audio >= 100_000
    down.estimate.loss_bps = 167_000
    assert down.on_report(0.05, 0.05, probed=False) is True
    assert down.video_paused and down.target_bps - audio < 100_000


def test_target_leaves_room_for_retransmissions_and_counts_the_audio_in() -> None:
    """The target is the publisher's REMB, which a browser applies to its audio and video
    together: only the retransmission share is left out."""
    down = Downlink(CongestionSettings(audio_bps=40_000, rtx_share=0.2), 1_000_000)
    assert down.estimate.bps == 1_250_001 and down.target_bps == 1_000_000
    down.estimate.loss_bps = 500_000
    assert down.target_bps == 500_000 * 0.8


def test_switched_off_it_only_reports_the_estimate() -> None:
    """``MEDIA_CONGESTION_CONTROL=off``: the estimate falls under loss (stats) but nothing is
    paused and retransmissions keep the starting share."""
    down = Downlink(CongestionSettings(enabled=False), 1_000_000)
    start_rate = down.budget.rate_bytes_s
    for _ in range(20):
        down.estimate._last_decrease = -10.0
        assert down.on_report(0.9, 0.05, probed=False) is False
    assert down.estimate.bps < 150_000 and not down.video_paused
    assert down.budget.rate_bytes_s == start_rate > 0
    assert down.probe_packets(time.monotonic() + 10, 0.1) == 0


def test_loss_is_taken_over_twenty_packets_of_cumulative_counts() -> None:
    """Chromium's receiver reports tens of ms apart: 1 lost of 3 must not read as 33 %."""
    window = LossWindow()
    assert window.fraction(1000, 0) is None  # the first report is the base
    assert window.fraction(1003, 1) is None  # 3 packets: too few to tell
    assert window.fraction(1010, 1) is None
    assert window.fraction(1020, 1) == 1 / 20
    assert window.fraction(1050, 4) == 3 / 30
    assert window.fraction(1060, 3) is None
    assert window.fraction(1080, 3) == 0.0  # duplicates lowered the count: no negative loss


def test_delivered_rate_counts_what_arrived_over_its_arrival_span() -> None:
    rate = DeliveredRate()
    # ten 1000-byte packets sent in a burst, five arrive 25 ms apart, the rest lost
    rate.add([SentPacket(i, i, 1000, 1_000_000 + 25_000 * i if i < 5 else None)
              for i in range(10)])
    assert rate.take() == 4 * 1000 * 8 / 0.1  # the first arrival opens the 100 ms span
    rate.add([SentPacket(20, 0, 1000, 5_000_000), SentPacket(21, 1, 1000, 5_010_000)])
    assert rate.take() is None  # 10 ms: one burst, no rate


# -- probing while application-limited ----------------------------------------------------

CEILING_BPS = int(1_000_000 / 0.8) + 1
"""The starting estimate of ``Downlink(CongestionSettings(...), 1_000_000)``."""


def _sent(start_s: float, seconds: float, bps: float, first_seq: int = 0) -> list[SentPacket]:
    """What a sender at ``bps`` sent from ``start_s`` on, 1000-byte packets, all received."""
    count = round(bps * seconds / 8000)
    return [
        SentPacket(first_seq + k, int((start_s + k * seconds / count) * 1e6), 1000,
                   int((start_s + k * seconds / count + 0.02) * 1e6))
        for k in range(count)
    ]


class FeedbackLink:
    """A sender at ``media_bps`` (500-byte packets: a multiple of 40 kbit/s) plus the probe
    padding ``Downlink.probe_packets`` asks for each 100 ms tick, reported to the downlink as
    transport feedback 120 ms later, each packet 20 ms after it was sent (a clean, constant
    path) unless ``lose_padding`` (or it is the ``lose_padding_every``-th padding packet);
    ``can_pad`` False: no track to carry the padding."""

    def __init__(self, down: Downlink) -> None:
        self.down = down
        self.seq = 0
        self.padding: list[tuple[float, int]] = []
        self.padded = 0
        """(tick s, padding packets) for every tick."""

    def run(self, start_s: float, seconds: float, media_bps: float,
            lose_padding: bool = False, can_pad: bool = True, lose_padding_every: int = 0,
            ) -> None:
        for k in range(round(seconds / 0.1)):
            t = start_s + k * 0.1
            padding = self.down.probe_packets(t, 0.1)
            self.padding.append((t, padding))
            media = media_bps * 0.1 / 4000
            assert media == int(media), "a whole number of packets per tick"
            sizes = [500] * int(media) + [PROBE_PACKET_BYTES] * padding * can_pad
            packets = []
            for i, size in enumerate(sizes):
                send_us = int((t + i * 0.1 / len(sizes)) * 1e6)
                if size == PROBE_PACKET_BYTES:
                    self.padded += 1
                lost = size == PROBE_PACKET_BYTES and (
                    lose_padding
                    or bool(lose_padding_every and self.padded % lose_padding_every == 0)
                )
                packets.append(SentPacket(self.seq & 0xFFFF, send_us, size,
                                          None if lost else send_us + 20_000))
                self.seq += 1
            self.down.on_transport_feedback(packets, t + 0.12)

    def probe_starts(self) -> list[float]:
        """The ticks at which a probe began (padding after a tick without)."""
        starts, before = [], 0
        for t, padding in self.padding:
            if padding and not before:
                starts.append(round(t, 1))
            before = padding
        return starts

    def padding_bps(self, start_s: float) -> float:
        """The padding rate of the probe that began at ``start_s`` (bits over its second)."""
        packets = sum(p for t, p in self.padding if start_s <= t < start_s + PROBE_DURATION_S)
        return packets * PROBE_PACKET_BYTES * 8 / PROBE_DURATION_S


def _downlink_at(estimate_bps: int, enabled: bool = True) -> Downlink:
    """A browser subscriber's downlink (transport feedback) whose estimate fell to
    ``estimate_bps`` (both estimates: the delay-based one not yet past its first over-use)."""
    down = Downlink(CongestionSettings(enabled=enabled), 1_000_000)
    down.use_delay_based()
    assert down.delay is not None and down.estimate.ceiling_bps == CEILING_BPS
    down.delay.rate.bps = down.estimate.loss_bps = estimate_bps
    return down


def test_application_limited_below_two_thirds_of_the_estimate_until_above_0_75() -> None:
    alr = AlrDetector()
    alr.on_sent(_sent(0.0, 0.5, 600_000), 1_000_000)
    assert not alr.limited and alr.sent.bps is None  # not a whole window yet
    alr.on_sent(_sent(0.5, 1.5, 700_000), 1_000_000)
    assert not alr.limited  # 0.7: a sender near its target (0.8 x the estimate)
    alr.on_sent(_sent(2.0, 1.0, 670_000), 1_000_000)
    assert not alr.limited
    alr.on_sent(_sent(3.0, 1.0, 660_000), 1_000_000)
    assert alr.limited, "the AIMD's bound: 1.5 x 660k + 10k is all it can reach"
    alr.on_sent(_sent(4.0, 1.5, 700_000), 1_000_000)
    assert alr.limited, "between the thresholds the state holds"
    alr.on_sent(_sent(5.5, 1.5, 780_000), 1_000_000)
    assert not alr.limited
    assert alr.sent.bps == pytest.approx(780_000, rel=0.01)


def test_a_sender_using_its_whole_target_is_never_probed() -> None:
    """Link-limited: the publisher sends its target (0.8 x the estimate - 48k) and the audio
    (48k), ~0.8 x the estimate. A probe would only overflow the bottleneck's queue."""
    down = _downlink_at(400_000)
    link = FeedbackLink(down)
    link.run(100.0, 30, media_bps=0.8 * 400_000)  # 320k
    assert not down.alr.limited and link.probe_starts() == []


def test_an_application_limited_sender_is_probed_at_twice_the_estimate_and_rises() -> None:
    """The clean call of bench/netq.py: 250k estimate, ~130k sent. The probe pads up to 500k
    and, through loss-free and without over-use, raises both estimates to what it sent."""
    down = _downlink_at(250_000)
    link = FeedbackLink(down)
    link.run(100.0, 3, media_bps=120_000)
    starts = link.probe_starts()
    assert down.alr.limited and len(starts) == 1 and starts[0] < 101.5
    assert link.padding_bps(starts[0]) == pytest.approx(500_000 - 120_000, rel=0.05)
    assert down.delay is not None
    assert 480_000 <= down.delay.bps <= 500_000 and 480_000 <= down.estimate.bps <= 500_000
    link.run(103.0, 5, media_bps=120_000)  # still application-limited: 5 s on, again
    assert len(link.probe_starts()) == 2 and down.bps >= 900_000


def test_a_probe_whose_padding_did_not_go_out_raises_nothing() -> None:
    """An audio-only subscription, a video track without RTX: nothing to pad on. Its media
    alone went through, which says nothing about twice the estimate."""
    down = _downlink_at(250_000)
    link = FeedbackLink(down)
    link.run(100.0, 3, media_bps=120_000, can_pad=False)
    assert len(link.probe_starts()) == 1 and down.bps == 250_000


def test_a_probe_asks_no_more_than_the_ceiling() -> None:
    down = _downlink_at(int(0.8 * CEILING_BPS))
    link = FeedbackLink(down)
    link.run(100.0, 3, media_bps=320_000)
    [start] = link.probe_starts()
    assert link.padding_bps(start) == pytest.approx(CEILING_BPS - 320_000, rel=0.05)
    assert 0.97 * CEILING_BPS <= down.bps <= CEILING_BPS


def test_no_probe_at_the_ceiling_without_congestion_control_or_transport_feedback() -> None:
    at_ceiling = _downlink_at(CEILING_BPS)
    switched_off = _downlink_at(250_000, enabled=False)
    receiver_reports_only = Downlink(CongestionSettings(enabled=True), 1_000_000)
    receiver_reports_only.estimate.loss_bps = 250_000
    for down in (at_ceiling, switched_off, receiver_reports_only):
        link = FeedbackLink(down)
        link.run(100.0, 12, media_bps=80_000)
        assert link.probe_starts() == [], down.settings
    assert at_ceiling.alr.limited and switched_off.alr.limited


def test_a_failed_probe_stops_its_padding_keeps_the_estimate_and_backs_off() -> None:
    """A probe that loses its packets (or queues up) fails: its padding stops at the first
    loss window, the estimate it provoked cuts of is restored, and each failure doubles the
    period before the next (5 s, then 10, 20, 40 s); one that passes brings it back to 5 s."""
    down = _downlink_at(250_000)
    link = FeedbackLink(down)
    link.run(100.0, 40, media_bps=80_000, lose_padding=True)
    starts = link.probe_starts()
    assert len(starts) == 3
    assert [round(b - a) for a, b in itertools.pairwise(starts)] == [10, 20]
    assert all(link.padding_bps(s) < 0.5 * (500_000 - 80_000) for s in starts), "not stopped"
    assert down.bps >= 250_000
    link.run(140.0, 35, media_bps=80_000)  # the next one, 40 s on, passes
    assert [round(s - starts[-1]) for s in link.probe_starts()[3:]] == [40]
    assert down.bps >= 480_000
    link.run(175.0, 6, media_bps=80_000)
    assert len(link.probe_starts()) == 5, "after a pass, the period is 5 s again"


def test_an_over_use_during_a_probe_stops_its_padding() -> None:
    down = _downlink_at(250_000)
    assert down.delay is not None
    link = FeedbackLink(down)
    link.run(100.0, 1.5, media_bps=80_000)
    [start] = link.probe_starts()
    down.delay.last_overuse = start + 0.3
    link.run(101.5, 2, media_bps=80_000)  # its next report stops it
    assert [p for t, p in link.padding if t >= 101.55] == [0] * 19
    assert down.bps == 250_000, "neither raised nor lowered by the probe"


def _paused_at(now: float) -> Downlink:
    """A browser subscriber's downlink whose video paused at ``now`` (estimate 100k)."""
    down = _downlink_at(100_000)
    assert down._update(now) and down.video_paused
    return down


def test_a_paused_probe_runs_its_whole_second_whatever_its_first_windows_show() -> None:
    """Paused, the probe's padding is all there is to measure the link with: an over-use in
    its first window does not stop it (on Chromium, such a window on a link just freed left
    video paused for good: bench/netq.py down120)."""
    down = _paused_at(100.0)
    assert down.delay is not None
    link = FeedbackLink(down)
    link.run(101.0, 0.3, media_bps=40_000)
    assert link.probe_starts() == [101.0]
    down.delay.last_overuse = 101.25
    link.run(101.3, 1.2, media_bps=40_000)
    assert [p > 0 for t, p in link.padding if t < 101.0 + PROBE_DURATION_S - 0.05] == [True] * 10
    assert down.video_paused, "a probe that queued up does not resume video"


def test_a_clean_report_after_a_paused_probe_resumes_video_with_transport_feedback_too() -> None:
    """The receiver report on the video stream covers a paused probe's padding: a clean one
    sent after the probe resumes video, also where the transport feedback (here: 4 % of the
    padding reported lost, too little for a loss-based cut) did not pass it."""
    down = _paused_at(100.0)
    link = FeedbackLink(down)
    link.run(101.0, 1.5, media_bps=40_000, lose_padding_every=25)
    assert link.probe_starts() == [101.0] and down.video_paused
    assert down.delay is not None and down.delay.reports > 0
    assert down.on_report(0.0, 0.05, probed=True) is True
    assert not down.video_paused and down.bps >= 250_000
