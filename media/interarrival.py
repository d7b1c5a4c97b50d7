"""Packet groups and their inter-group delay variation: the pre-filtering step of GCC's
delay-based controller (draft-ietf-rmcat-gcc-02 §5.1 "Arrival-time model" and §5.2
"Pre-filtering"), as libwebrtc's ``InterArrivalDelta`` does it.

A *group* is the packets sent within ``GROUP_SPAN_US`` (5 ms) of the group's first one: a
video frame's packets leave together, and timing them one by one would measure the pacer, not
the path. Packets that arrive in a burst — within 5 ms of the previous one and sooner than
their send spacing predicts — still join the current group (§5.2 pre-filtering): a queue that
drains at once after a radio stall would otherwise look like a sudden *decrease* in delay.

For two consecutive groups i-1, i the variation is
``d(i) = (t(i) − t(i−1)) − (T(i) − T(i−1))`` (§5.1), with ``T`` the group's last send time
and ``t`` its last arrival: positive when the path queued more of group i than of i−1.
Send times are the SFU's clock, arrival times the receiver's; only differences are used, so
the two clocks need no common base.
"""

from __future__ import annotations

from dataclasses import dataclass

GROUP_SPAN_US = 5_000
"""Packets sent within this of a group's first packet belong to it (gcc-02 §5.1)."""
BURST_DELTA_US = 5_000
"""A packet arriving within this of the previous one, earlier than its send spacing
predicts, is part of a burst (libwebrtc's ``kBurstDeltaThreshold``)."""
MAX_BURST_US = 100_000
"""A burst never spans more than this (libwebrtc's ``kMaxBurstDuration``)."""
ARRIVAL_JUMP_US = 3_000_000
"""The receiver's clock moved this much more than ours between two groups: it was reset."""
MAX_REORDERED = 3
"""Consecutive groups arriving out of order before the history is dropped."""


@dataclass(frozen=True, slots=True)
class GroupDelta:
    """The change from one packet group to the next (gcc-02 §5.1)."""

    send_delta_ms: float
    """``T(i) − T(i−1)``: how far apart the SFU sent the two groups."""
    arrival_delta_ms: float
    """``t(i) − t(i−1)``: how far apart the receiver got them."""
    arrival_ms: float
    """``t(i)``: when the group finished arriving (receiver's clock)."""


@dataclass(slots=True)
class _Group:
    first_send_us: int
    send_us: int
    first_arrival_us: int
    arrival_us: int
    local_us: int
    """When the SFU learnt of the group's last packet (its feedback's arrival)."""


class InterArrival:
    """Groups one transport's acknowledged packets, in arrival order, and yields the delta
    between each completed group and the one before it."""

    def __init__(self) -> None:
        self._current: _Group | None = None
        self._previous: _Group | None = None
        self._reordered = 0

    def reset(self) -> None:
        self._current = None
        self._previous = None
        self._reordered = 0

    def add(self, send_us: int, arrival_us: int, local_us: int) -> GroupDelta | None:
        """One packet (sent at ``send_us`` on our clock, arrived at ``arrival_us`` on the
        receiver's, reported to us at ``local_us``). Returns the delta when it closed a group."""
        current = self._current
        if current is None:
            self._current = _Group(send_us, send_us, arrival_us, arrival_us, local_us)
            return None
        if send_us < current.first_send_us:
            return None  # sent before the current group started: reordered, ignore it
        delta: GroupDelta | None = None
        if self._starts_new_group(current, send_us, arrival_us):
            delta = self._close(current)
            self._previous = current
            self._current = _Group(send_us, send_us, arrival_us, arrival_us, local_us)
            return delta
        current.send_us = max(current.send_us, send_us)
        current.arrival_us = arrival_us
        current.local_us = local_us
        return None

    def _starts_new_group(self, current: _Group, send_us: int, arrival_us: int) -> bool:
        if self._in_burst(current, send_us, arrival_us):
            return False
        return send_us - current.first_send_us > GROUP_SPAN_US

    @staticmethod
    def _in_burst(current: _Group, send_us: int, arrival_us: int) -> bool:
        send_delta = send_us - current.send_us
        if send_delta == 0:
            return True
        arrival_delta = arrival_us - current.arrival_us
        return (
            arrival_delta - send_delta < 0
            and arrival_delta <= BURST_DELTA_US
            and arrival_us - current.first_arrival_us < MAX_BURST_US
        )

    def _close(self, current: _Group) -> GroupDelta | None:
        previous = self._previous
        if previous is None:
            return None
        send_delta = current.send_us - previous.send_us
        arrival_delta = current.arrival_us - previous.arrival_us
        local_delta = current.local_us - previous.local_us
        if arrival_delta - local_delta >= ARRIVAL_JUMP_US:
            self.reset()
            return None
        if arrival_delta < 0:
            self._reordered += 1
            if self._reordered >= MAX_REORDERED:
                self.reset()
            return None
        self._reordered = 0
        return GroupDelta(send_delta / 1000, arrival_delta / 1000, current.arrival_us / 1000)
