"""Transport-wide sequence numbers on what the SFU sends, and when each packet left
(draft-holmer-rmcat-transport-wide-cc-extensions-01 §2; the sending half of ``media.twcc``).

Every RTP packet on a subscriber's transport — forwarded media, RTX retransmissions, padding
probes, on every SSRC — carries one 16-bit counter in an RFC 8285 one-byte header extension
(§4.2): ``0xBEDE``, length 1 word, then the element ``id|len-1 = 1``, the two bytes of the
number and one padding byte. The payload after it is the publisher's, untouched. The
subscriber reports arrival times per number (RTPFB FMT 15, ``media.twcc.parse_feedback``);
``TransportSequencer`` keeps (number → send time, size) for the last ``HISTORY`` packets so
that a report can be turned into (sent, arrived, size) samples for the delay-based estimator
(``media.delay_estimate``).

Only packets that left the socket take a number: a send that failed (full socket buffer)
reuses it, so the subscriber never reports a gap the network did not cause.

Once the SFU has asked the subscriber for a playout delay (``media.playout_delay``), every
packet also carries that element (``id|len-1 = 2``, three bytes) in the same block: two words.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

HEADER = struct.Struct("!BBHIIHHBHB")
"""RTP fixed header (RFC 3550 §5.1) with X set, then the one-byte-form extension block
(RFC 8285 §4.2: ``0xBEDE``, length in words) holding one two-byte element and a pad byte."""
HEADER_BYTES = HEADER.size
PLAYOUT_HEADER = struct.Struct("!BBHIIHHBHBHBB")
"""The same with the playout-delay element after the number: its id byte and 24 bits (as a
16-bit and an 8-bit field), then one pad byte (7 bytes of elements + 1 = two words)."""
PLAYOUT_HEADER_BYTES = PLAYOUT_HEADER.size
ONE_BYTE_PROFILE = 0xBEDE
HISTORY = 4096
"""Packets remembered (a power of two): ~27 s at 1.5 Mbit/s of 1200-byte packets, far beyond
the ~100 ms a feedback report lags."""


@dataclass(frozen=True, slots=True)
class SentPacket:
    """One acknowledged-or-lost packet of a feedback report, matched with the send history."""

    seq: int
    """Transport-wide sequence number (16 bits)."""
    send_us: int
    """When the SFU sent it (``time.monotonic_ns() // 1000``)."""
    size: int
    """Bytes on the wire (SRTP-protected RTP packet)."""
    arrival_us: int | None
    """When the subscriber received it (its own clock), None if reported lost."""


class TransportSequencer:
    """One transport's transport-wide sequence number and send history."""

    __slots__ = ("_send_us", "_seq", "_size", "element", "ext_id", "header_bytes", "next_seq",
                 "packets", "playout", "playout_element")

    def __init__(self, ext_id: int) -> None:
        if not 1 <= ext_id <= 14:
            raise ValueError("a one-byte header extension id is 1..14 (RFC 8285 §4.2)")
        self.ext_id = ext_id
        self.element = (ext_id << 4) | 1
        """The element's first byte: id and length − 1 (two bytes of data)."""
        self.next_seq = 0
        self.packets = 0
        self.playout_element = 0
        """The playout-delay element's first byte once negotiated (``negotiate_playout``)."""
        self.playout = -1
        """Its 24 bits (``media.playout_delay.element_value``); -1: not sent."""
        self.header_bytes = HEADER_BYTES
        self._seq = [-1] * HISTORY
        self._send_us = [0] * HISTORY
        self._size = [0] * HISTORY

    def negotiate_playout(self, ext_id: int) -> None:
        """The subscriber accepted the playout-delay extension as ``ext_id``."""
        if not 1 <= ext_id <= 14:
            raise ValueError("a one-byte header extension id is 1..14 (RFC 8285 §4.2)")
        self.playout_element = (ext_id << 4) | 2

    def set_playout(self, value: int) -> None:
        """Send the playout-delay element with ``value`` on every packet from now on (the
        receiver keeps the last one it saw, so once sent it is never left out)."""
        if self.playout_element:
            self.playout = value
            self.header_bytes = PLAYOUT_HEADER_BYTES

    def pack_header(self, buf: Any, b0: int, b1: int, seq: int, ts: int, ssrc: int) -> int:
        """Write the RTP header with this transport's next number into ``buf``; returns its
        length (``header_bytes``). The number is consumed only by ``sent``."""
        playout = self.playout
        if playout < 0:
            HEADER.pack_into(
                buf, 0, b0 | 0x10, b1, seq, ts, ssrc, ONE_BYTE_PROFILE, 1, self.element,
                self.next_seq, 0,
            )
            return HEADER_BYTES
        PLAYOUT_HEADER.pack_into(
            buf, 0, b0 | 0x10, b1, seq, ts, ssrc, ONE_BYTE_PROFILE, 2, self.element,
            self.next_seq, self.playout_element, playout >> 8, playout & 0xFF, 0,
        )
        return PLAYOUT_HEADER_BYTES

    def sent(self, size: int, now_us: int) -> None:
        """The packet numbered ``next_seq`` left at ``now_us`` with ``size`` bytes."""
        seq = self.next_seq
        slot = seq & (HISTORY - 1)
        self._seq[slot] = seq
        self._send_us[slot] = now_us
        self._size[slot] = size
        self.next_seq = (seq + 1) & 0xFFFF
        self.packets += 1

    def lookup(self, seq: int) -> tuple[int, int] | None:
        """(send µs, size) of the packet numbered ``seq``, if still remembered."""
        slot = seq & (HISTORY - 1)
        if self._seq[slot] != seq:
            return None
        return self._send_us[slot], self._size[slot]

    def match(self, arrivals: dict[int, int | None]) -> list[SentPacket]:
        """The packets of one feedback report (``media.twcc.Feedback.arrivals``) that are
        still in the history, in the report's order. A packet reported received is then
        forgotten: a report repeated by the receiver must not count it twice."""
        out: list[SentPacket] = []
        for seq, arrival in arrivals.items():
            sent = self.lookup(seq)
            if sent is not None:
                out.append(SentPacket(seq, sent[0], sent[1], arrival))
                if arrival is not None:
                    self._seq[seq & (HISTORY - 1)] = -1
        return out
