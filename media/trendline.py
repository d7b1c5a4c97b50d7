"""Is the path's queue growing? The trendline filter and the over-use detector of GCC's
delay-based controller (draft-ietf-rmcat-gcc-02 §5.3 and §5.4), in the form libwebrtc ships
(``TrendlineEstimator``, which replaced the draft's Kalman filter in 2017).

**Trendline** (replaces the §5.3 arrival-time filter). Each group's delay variation
``d(i)`` (``media.interarrival``) is accumulated into the one-way queuing delay relative to
the start, smoothed exponentially (``SMOOTHING`` 0.9), and a least-squares line is fitted
through the last ``WINDOW`` (20) points of (arrival time, smoothed delay). Its slope — ms of
extra queuing per ms — is the signal: a link carrying more than it can drains slower than it
fills, and the slope is positive long before a queue overflows and drops.

**Over-use detector** (§5.4). The slope is scaled to ``m(i) = min(n, 60) · slope · 4`` (n:
deltas seen; libwebrtc's ``kMinNumDeltas`` and ``threshold_gain``) and compared with an
adaptive threshold ``γ(i)``:

* ``m > γ`` for longer than ``OVERUSE_TIME_MS`` (10 ms of send time) and at least two
  groups, with the slope not falling: **over-use**;
* ``m < −γ``: **under-use** (queues draining);
* otherwise **normal**.

``γ`` starts at 12.5 ms and follows ``|m|``: ``γ ← γ + Δt · k · (|m| − γ)`` with
``k_up`` = 0.0087 when ``|m| > γ`` and ``k_down`` = 0.039 otherwise (§5.4 eq. 4–5; Δt capped at
100 ms), clamped to [6, 600] ms, and not updated on outliers more than 15 ms beyond it. A
static threshold would either starve against a concurrent TCP flow (too low) or never fire
(too high); the adaptive one tracks the normal jitter of the path.
"""

from __future__ import annotations

import enum
from collections import deque

WINDOW = 20
"""Groups the trendline is fitted over (libwebrtc's ``kDefaultTrendlineWindowSize``)."""
SMOOTHING = 0.9
"""Exponential smoothing of the accumulated delay (``kDefaultTrendlineSmoothingCoeff``)."""
THRESHOLD_GAIN = 4.0
"""Scales the slope before it is compared (``kDefaultTrendlineThresholdGain``)."""
MIN_NUM_DELTAS = 60
"""The slope counts fully once this many deltas are in (``kMinNumDeltas``)."""
INITIAL_THRESHOLD_MS = 12.5
"""``γ(0)`` (gcc-02 §5.4)."""
K_UP = 0.0087
K_DOWN = 0.039
THRESHOLD_MIN_MS = 6.0
THRESHOLD_MAX_MS = 600.0
MAX_ADAPT_OFFSET_MS = 15.0
"""A sample further than this above ``γ`` does not move it (a spike, not a new normal)."""
MAX_ADAPT_STEP_MS = 100.0
OVERUSE_TIME_MS = 10.0
"""Over-use must last this long (in send time) before it is signalled (gcc-02 §5.4)."""


class Usage(enum.Enum):
    """The detector's verdict on the path (gcc-02 §5.4)."""

    NORMAL = "normal"
    OVERUSING = "overusing"
    UNDERUSING = "underusing"


def linear_fit_slope(points: deque[tuple[float, float]]) -> float | None:
    """Least-squares slope of ``y`` over ``x``; None if all ``x`` are equal."""
    n = len(points)
    x_avg = sum(x for x, _ in points) / n
    y_avg = sum(y for _, y in points) / n
    numerator = sum((x - x_avg) * (y - y_avg) for x, y in points)
    denominator = sum((x - x_avg) ** 2 for x, _ in points)
    return numerator / denominator if denominator else None


class TrendlineEstimator:
    """Trendline of the queuing delay and the over-use detector on top of it."""

    def __init__(self) -> None:
        self.threshold_ms = INITIAL_THRESHOLD_MS
        self.usage = Usage.NORMAL
        self.trend = 0.0
        """The last fitted slope (ms of queuing per ms)."""
        self.modified_trend = 0.0
        """``m(i)``, the slope as compared with the threshold."""
        self._deltas = 0
        self._first_arrival_ms: float | None = None
        self._accumulated_ms = 0.0
        self._smoothed_ms = 0.0
        self._history: deque[tuple[float, float]] = deque(maxlen=WINDOW)
        self._overuse_ms = -1.0
        self._overuse_count = 0
        self._last_update_ms: float | None = None

    def update(self, arrival_delta_ms: float, send_delta_ms: float, arrival_ms: float) -> Usage:
        """One group delta (``media.interarrival.GroupDelta``); returns the verdict."""
        delay_ms = arrival_delta_ms - send_delta_ms
        self._deltas = min(self._deltas + 1, 1000)
        if self._first_arrival_ms is None:
            self._first_arrival_ms = arrival_ms
        self._accumulated_ms += delay_ms
        self._smoothed_ms = SMOOTHING * self._smoothed_ms + (1 - SMOOTHING) * self._accumulated_ms
        self._history.append((arrival_ms - self._first_arrival_ms, self._smoothed_ms))
        trend = self.trend
        if len(self._history) == WINDOW:
            slope = linear_fit_slope(self._history)
            trend = slope if slope is not None else trend
        self._detect(trend, send_delta_ms, arrival_ms)
        return self.usage

    def _detect(self, trend: float, send_delta_ms: float, now_ms: float) -> None:
        if self._deltas < 2:
            self.usage = Usage.NORMAL
            return
        modified = min(self._deltas, MIN_NUM_DELTAS) * trend * THRESHOLD_GAIN
        self.modified_trend = modified
        if modified > self.threshold_ms:
            if self._overuse_ms < 0:
                self._overuse_ms = send_delta_ms / 2  # assume it began half a group ago
            else:
                self._overuse_ms += send_delta_ms
            self._overuse_count += 1
            if (
                self._overuse_ms > OVERUSE_TIME_MS
                and self._overuse_count > 1
                and trend >= self.trend
            ):
                self._overuse_ms = 0.0
                self._overuse_count = 0
                self.usage = Usage.OVERUSING
        elif modified < -self.threshold_ms:
            self._overuse_ms = -1.0
            self._overuse_count = 0
            self.usage = Usage.UNDERUSING
        else:
            self._overuse_ms = -1.0
            self._overuse_count = 0
            self.usage = Usage.NORMAL
        self.trend = trend
        self._adapt_threshold(modified, now_ms)

    def _adapt_threshold(self, modified: float, now_ms: float) -> None:
        """gcc-02 §5.4: ``γ`` follows ``|m|``, fast down (``K_DOWN``), slowly up (``K_UP``)."""
        if self._last_update_ms is None:
            self._last_update_ms = now_ms
        if abs(modified) > self.threshold_ms + MAX_ADAPT_OFFSET_MS:
            self._last_update_ms = now_ms
            return
        k = K_DOWN if abs(modified) < self.threshold_ms else K_UP
        step_ms = min(now_ms - self._last_update_ms, MAX_ADAPT_STEP_MS)
        self.threshold_ms += k * (abs(modified) - self.threshold_ms) * step_ms
        self.threshold_ms = min(THRESHOLD_MAX_MS, max(THRESHOLD_MIN_MS, self.threshold_ms))
        self._last_update_ms = now_ms
