"""A deterministic simulation of one subscriber's downlink for the delay-based estimator: the
SFU's real ``TransportSequencer`` numbers packets, a drop-tail bottleneck of capacity C(t)
queues them, the receiver's real ``TransportFeedbackRecorder`` (the SFU's own feedback
builder, standing in for the browser's) reports arrivals every 100 ms, and the real
``parse_feedback`` and ``Downlink`` (its delay-based estimate, and its loss-based one fed with
the reports' losses) close the loop: the sender follows the estimate as a publisher follows
the SFU's REMB.

Time advances in 1 ms steps; all randomness (frame sizes, send spacing, path jitter) comes
from one seeded ``random.Random``, so a seed always gives the same run.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from media.congestion import PROBE_PACKET_BYTES, CongestionSettings, Downlink
from media.transport_seq import TransportSequencer
from media.twcc import TransportFeedbackRecorder, parse_feedback

FRAME_US = 33_333
AUDIO_US = 20_000
AUDIO_BYTES = 120
MTU_PAYLOAD = 1200
PROPAGATION_US = 20_000
FEEDBACK_US = 100_000
BUFFER_US = 250_000
"""The bottleneck drops what would wait longer than this (a drop-tail token bucket, as
``tests/media/netns.QUEUE_MS``)."""
RECEIVER_CLOCK_US = 7_777_000_000
"""The receiver's clock is not ours: only differences may matter."""


@dataclass
class Run:
    """What a simulation saw: (time s, estimate bps) after each feedback report."""

    downlink: Downlink
    estimates: list[tuple[float, int]] = field(default_factory=list)
    delay_estimates: list[int] = field(default_factory=list)
    sent_bytes: int = 0
    lost: int = 0
    paused: list[tuple[float, bool]] = field(default_factory=list)
    """(time s, video paused) at each change (``control=True``)."""
    padded: list[tuple[float, bool]] = field(default_factory=list)
    """(time s, video paused) at each feedback tick that sent probe padding."""

    def window(self, start_s: float, end_s: float) -> list[int]:
        return [bps for t, bps in self.estimates if start_s <= t < end_s]


def simulate(
    capacity_bps: Callable[[float], float],
    seconds: float,
    *,
    seed: int,
    source_bps: float = 1_200_000,
    share: float = 1.0,
    max_target_bps: int = 1_500_000,
    loss: float = 0.0,
    control: bool = False,
) -> Run:
    """Send at min(``source_bps``, ``share`` × estimate) through a bottleneck of ``capacity_bps(t)``
    (the estimate starts at what ``max_target_bps`` needs, as ``Downlink`` does), losing a
    ``loss`` share of the packets at random on the way (a radio link's losses, not the queue's).
    ``share`` < 1: an application-limited sender (a publisher whose encoder sends less than
    it is told; one that uses all of its target sends ~0.8 × the estimate with the audio).
    ``control``: congestion control on — below the floor video stops (audio goes on) and the
    SFU's padding probes go out each feedback tick, as ``media.feedback`` sends them."""
    rng = random.Random(seed)
    sequencer = TransportSequencer(3)
    recorder = TransportFeedbackRecorder()
    downlink = Downlink(CongestionSettings(enabled=control), max_target_bps)
    downlink.rtt_s = 2 * PROPAGATION_US / 1e6
    downlink.use_delay_based()
    run = Run(downlink)
    in_flight: list[tuple[int, int]] = []  # (arrival µs, transport seq)
    reports: list[tuple[int, int, bytes]] = []  # (due µs, order, packet)
    queue_free_us = 0
    next_frame_us = 0
    next_audio_us = 0
    order = 0

    def send(size: int, at_us: int) -> None:
        nonlocal queue_free_us
        seq = sequencer.next_seq
        sequencer.sent(size, at_us)
        run.sent_bytes += size
        drain_us = int(size * 8 * 1_000_000 / capacity_bps(at_us / 1e6))
        depart = max(at_us, queue_free_us) + drain_us
        if depart - at_us > BUFFER_US:
            run.lost += 1
            return
        if loss and rng.random() < loss:
            run.lost += 1
            queue_free_us = depart
            return
        queue_free_us = depart
        arrival = depart + PROPAGATION_US + rng.randrange(0, 1000)
        heapq.heappush(in_flight, (arrival, seq))

    for step in range(int(seconds * 1000)):
        now_us = step * 1000
        rate = min(source_bps, share * downlink.bps)
        if now_us >= next_audio_us:
            send(AUDIO_BYTES + rng.randrange(-20, 20), now_us)
            next_audio_us += AUDIO_US
        if now_us >= next_frame_us and downlink.video_paused:
            next_frame_us += FRAME_US
        elif now_us >= next_frame_us:
            frame = max(200, int((rate - 8 * AUDIO_BYTES * 50) / 8 * FRAME_US / 1e6))
            frame = int(frame * rng.uniform(0.7, 1.3))
            at = now_us
            while frame > 0:
                size = min(MTU_PAYLOAD, frame)
                send(size + 32, at)
                frame -= size
                at += rng.randrange(20, 200)  # the event loop's spacing, not a pacer
            next_frame_us += FRAME_US
        while in_flight and in_flight[0][0] <= now_us:
            arrival, seq = heapq.heappop(in_flight)
            recorder.record(seq, arrival + RECEIVER_CLOCK_US)
        if now_us % FEEDBACK_US == 0:
            for packet in recorder.feedback(1, 2):
                order += 1
                heapq.heappush(reports, (now_us + PROPAGATION_US, order, packet))
            padding = downlink.probe_packets(now_us / 1e6, FEEDBACK_US / 1e6)
            for _ in range(padding):
                send(PROBE_PACKET_BYTES + 32, now_us)
            if padding:
                run.padded.append((now_us / 1e6, downlink.video_paused))
        while reports and reports[0][0] <= now_us:
            _, _, packet = heapq.heappop(reports)
            matched = sequencer.match(parse_feedback(packet).arrivals)
            _, paused_changed = downlink.on_transport_feedback(matched, now_us / 1e6)
            run.estimates.append((now_us / 1e6, downlink.bps))
            if paused_changed:
                run.paused.append((now_us / 1e6, downlink.video_paused))
            if downlink.delay is not None:
                run.delay_estimates.append(downlink.delay.bps)
    return run
