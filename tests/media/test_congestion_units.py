"""The downlink estimate and its decisions (media.congestion), without a network."""

from __future__ import annotations

import time

import pytest

from media.congestion import (
    MIN_DECREASE_INTERVAL_S,
    PROBE_DURATION_S,
    PROBE_PERIOD_S,
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
    assert not down.video_paused and down.target_bps >= 100_000
    down.estimate.loss_bps = 167_000
    assert down.on_report(0.05, 0.05, probed=False) is True
    assert down.video_paused and down.target_bps < 100_000


def test_target_leaves_room_for_retransmissions_and_audio() -> None:
    down = Downlink(CongestionSettings(audio_bps=40_000, rtx_share=0.2), 1_000_000)
    assert down.estimate.bps == 1_300_001 and down.target_bps == 1_000_000
    down.estimate.loss_bps = 500_000
    assert down.target_bps == 500_000 * 0.8 - 40_000


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
