"""The rate controller of GCC's delay-based half (draft-ietf-rmcat-gcc-02 §5.5), as libwebrtc's
``AimdRateControl``, ``LinkCapacityEstimator`` and ``BitrateEstimator`` (the acknowledged
throughput) implement it.

**Acknowledged throughput** (``AckedThroughput``): bytes the receiver reported received, over
150 ms windows of *its* arrival clock (500 ms for the first), merged into a running estimate
by a Bayesian update whose sample variance grows with the sample's distance from the
estimate: one window that caught a burst barely moves it.

**AIMD** (§5.5), driven by the over-use detector's verdict (``media.trendline.Usage``):

* over-use → *decrease*: ``A ← BETA · R`` (0.85 × acknowledged throughput), then *hold*;
  again at most once per RTT (10–200 ms) unless the throughput fell below half the estimate;
* normal → *increase*: multiplicatively by ``1.08^Δt`` (8 %/s) while far from the link
  capacity seen at earlier over-uses, additively (about one packet per response time,
  ``RTT + 100 ms``, at least 4 kbit/s per s) once near it (§5.5: near convergence);
* under-use → *hold* (the queues are draining; raising now would refill them).

An increase never goes beyond ``1.5 · R + 10 kbit/s``: the estimate must not run away from
what was actually carried (an SFU's sender is application-limited: it forwards what the
publisher sends). The link capacity is an exponential average (α = 0.05) of the throughput at
each over-use with its deviation; a throughput above ``mean + 3σ`` forgets it (the link got
better), one below ``mean − 3σ`` at an over-use too (it got worse).

Before the first over-use the controller only watches (libwebrtc's ``bitrate_is_initialized_``
false): a clean link keeps the starting estimate, which is the configured maximum.
"""

from __future__ import annotations

import math

from media.trendline import Usage

BETA = 0.85
"""Decrease factor on over-use (gcc-02 §5.5)."""
INCREASE_PER_S = 1.08
"""Multiplicative increase far from convergence (libwebrtc's ``alpha``)."""
MIN_ADDITIVE_BPS_PER_S = 4_000
"""Smallest additive increase (``kMinIncreaseRateBpsPerSecond``)."""
DEFAULT_RTT_S = 0.2
THROUGHPUT_HEADROOM = 1.5
THROUGHPUT_SLACK_BPS = 10_000
"""An increase stops at ``1.5 · R + 10 kbit/s`` (libwebrtc's ``ClampBitrate``)."""
CAPACITY_ALPHA = 0.05
FIRST_WINDOW_MS = 500
WINDOW_MS = 150
"""Acknowledged-throughput windows (``kInitialRateWindowMs``, ``kRateWindowMs``)."""
UNCERTAINTY_SCALE = 10.0


class AckedThroughput:
    """The receive rate of acknowledged packets (libwebrtc's ``BitrateEstimator``)."""

    def __init__(self) -> None:
        self.kbps: float | None = None
        self._variance = 50.0
        self._window_ms = 0.0
        self._previous_ms: float | None = None
        self._sum_bytes = 0

    @property
    def bps(self) -> float | None:
        return None if self.kbps is None else self.kbps * 1000

    def add(self, arrival_ms: float, size: int) -> None:
        """One acknowledged packet, in order of arrival (the receiver's clock)."""
        window = FIRST_WINDOW_MS if self.kbps is None else WINDOW_MS
        sample = self._window_sample(arrival_ms, size, window)
        if sample is None:
            return
        if self.kbps is None:
            self.kbps = sample
            return
        uncertainty = UNCERTAINTY_SCALE * abs(self.kbps - sample) / max(self.kbps, 1e-9)
        sample_variance = uncertainty**2
        predicted_variance = self._variance + 5.0
        self.kbps = (sample_variance * self.kbps + predicted_variance * sample) / (
            sample_variance + predicted_variance
        )
        self._variance = sample_variance * predicted_variance / (
            sample_variance + predicted_variance
        )

    def _window_sample(self, now_ms: float, size: int, window_ms: int) -> float | None:
        previous = self._previous_ms
        if previous is not None and now_ms < previous:
            previous = None  # the receiver's clock went back: start over
            self._sum_bytes = 0
            self._window_ms = 0.0
        if previous is not None:
            self._window_ms += now_ms - previous
            if now_ms - previous > window_ms:  # a silence longer than a window: no sample
                self._sum_bytes = 0
                self._window_ms %= window_ms
        self._previous_ms = now_ms
        sample = None
        if self._window_ms >= window_ms:
            sample = 8.0 * self._sum_bytes / window_ms
            self._window_ms -= window_ms
            self._sum_bytes = 0
        self._sum_bytes += size
        return sample


class LinkCapacity:
    """The throughput seen at over-uses: its mean and deviation (``LinkCapacityEstimator``)."""

    def __init__(self) -> None:
        self.kbps: float | None = None
        self._deviation = 0.4

    def upper_bps(self) -> float:
        kbps = self.kbps
        if kbps is None:
            return math.inf
        return (kbps + 3 * math.sqrt(self._deviation * kbps)) * 1000

    def lower_bps(self) -> float:
        kbps = self.kbps
        if kbps is None:
            return 0.0
        return max(0.0, kbps - 3 * math.sqrt(self._deviation * kbps)) * 1000

    def reset(self) -> None:
        self.kbps = None

    def on_overuse(self, throughput_bps: float) -> None:
        sample = throughput_bps / 1000
        if self.kbps is None:
            self.kbps = sample
        else:
            self.kbps = (1 - CAPACITY_ALPHA) * self.kbps + CAPACITY_ALPHA * sample
        error = self.kbps - sample
        self._deviation = (1 - CAPACITY_ALPHA) * self._deviation + (
            CAPACITY_ALPHA * error * error / max(self.kbps, 1.0)
        )
        self._deviation = min(2.5, max(0.4, self._deviation))


class AimdRateControl:
    """Additive-increase / multiplicative-decrease of the delay-based estimate (gcc-02 §5.5)."""

    def __init__(self, start_bps: float, min_bps: float, max_bps: float) -> None:
        self.bps = start_bps
        self.min_bps = min_bps
        self.max_bps = max_bps
        self.rtt_s = DEFAULT_RTT_S
        self.initialized = False
        """False until the first over-use: until then the estimate stays at the start."""
        self.state = "hold"
        """``increase``, ``decrease`` or ``hold`` (gcc-02 §5.5 Figure 2)."""
        self.capacity = LinkCapacity()
        self._last_change: float | None = None
        self._throughput_bps: float | None = None

    def set_estimate(self, bps: float, now: float) -> None:
        """Jump to ``bps`` (a probe showed the link carries it)."""
        self.bps = min(self.max_bps, max(self.min_bps, bps))
        self.initialized = True
        self._last_change = now

    def time_to_reduce_further(self, now: float, throughput_bps: float | None) -> bool:
        interval = min(0.2, max(0.01, self.rtt_s))
        if self._last_change is None or now - self._last_change >= interval:
            return True
        return throughput_bps is not None and throughput_bps < 0.5 * self.bps

    def update(self, usage: Usage, throughput_bps: float | None, now: float) -> float:
        """Apply the detector's verdict at ``now`` (seconds); returns the estimate."""
        if throughput_bps is not None:
            self._throughput_bps = throughput_bps
        throughput = self._throughput_bps
        if not self.initialized and usage is not Usage.OVERUSING:
            return self.bps
        if usage is Usage.OVERUSING:
            if self.state != "decrease" and not self.time_to_reduce_further(now, throughput):
                return self.bps
            self.state = "decrease"
        elif usage is Usage.UNDERUSING:
            self.state = "hold"
        elif self.state == "hold":
            self._last_change = now
            self.state = "increase"
        if self.state == "increase":
            self._increase(throughput, now)
        elif self.state == "decrease" and throughput is not None:
            self._decrease(throughput, now)
        return self.bps

    def lower_to(self, bps: float, now: float) -> None:
        """Another controller (the loss-based one) cut the estimate to ``bps``: follow it
        down, and control from there (hold, then this controller's increases)."""
        if bps < self.bps:
            self.bps = max(self.min_bps, bps)
        self.initialized = True
        self.state = "hold"
        self._last_change = now

    def _increase(self, throughput: float | None, now: float) -> None:
        if throughput is not None and throughput > self.capacity.upper_bps():
            self.capacity.reset()
        elapsed = 0.0 if self._last_change is None else now - self._last_change
        if self.capacity.kbps is not None:
            step = self._near_capacity_bps_per_s() * elapsed
        else:
            step = max(1000.0, self.bps * (INCREASE_PER_S ** min(elapsed, 1.0) - 1))
        target = self.bps + step
        if throughput is not None:
            limit = THROUGHPUT_HEADROOM * throughput + THROUGHPUT_SLACK_BPS
            if target > limit:
                target = max(self.bps, limit)
        self.bps = min(self.max_bps, max(self.min_bps, target))
        self._last_change = now

    def _near_capacity_bps_per_s(self) -> float:
        """About one average packet per response time (libwebrtc's
        ``GetNearMaxIncreaseRateBpsPerSecond``): 30 frames/s of ≤ 1200-byte packets."""
        frame_bits = self.bps / 30
        packets = math.ceil(frame_bits / (1200 * 8))
        packet_bits = frame_bits / max(1, packets)
        return max(MIN_ADDITIVE_BPS_PER_S, packet_bits / (self.rtt_s + 0.1))

    def _decrease(self, throughput: float, now: float) -> None:
        target = BETA * throughput
        if target > self.bps and self.capacity.kbps is not None:
            target = BETA * self.capacity.kbps * 1000
        if target < self.bps:
            self.bps = max(self.min_bps, target)
        if throughput < self.capacity.lower_bps():
            self.capacity.reset()
        self.capacity.on_overuse(throughput)
        self.initialized = True
        self.state = "hold"
        self._last_change = now
