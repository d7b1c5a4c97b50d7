"""Transport-wide congestion control feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01).

The publisher numbers every RTP packet of its transport with a 16-bit transport-wide
sequence number in a header extension (§2); the SFU records when each one arrived and
reports the arrivals back in RTPFB FMT 15 feedback packets (§3.1) every ~100 ms, which is
what the browser's delay-based estimator (GCC, draft-ietf-rmcat-gcc-02 §5) runs on.

Feedback layout (§3.1), after the 12-byte RTPFB header (V/P/FMT, PT=205, length, sender
SSRC, media SSRC): base sequence number (16), packet status count (16), reference time
(24, signed, 64 ms units), feedback packet count (8), packet chunks (16 bits each), receive
deltas (8 or 16 bits, 250 µs units), zero padding to a 32-bit boundary.

Packet chunks (§3.1.3, §3.1.4): a run-length chunk is ``0 | status(2) | run(13)``; a status
vector chunk is ``1 | size(1) | symbols(14)`` with fourteen 1-bit (received or not) or seven
2-bit symbols. Status symbols (§3.1.1): 0 not received, 1 received with a small delta
(1 byte, 0..63.75 ms), 2 received with a large or negative delta (2 bytes, signed).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

TRANSPORT_CC_URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
RTCP_RTPFB = 205
RTCP_RTPFB_TWCC = 15

NOT_RECEIVED = 0
SMALL_DELTA = 1
LARGE_DELTA = 2

DELTA_US = 250
"""One receive-delta tick (§3.1.5)."""
REFERENCE_US = 64_000
"""One reference-time tick (§3.1)."""
_MAX_STATUS = 1000
"""Packets per feedback packet: keeps it under ~1.3 KB even with every delta large."""
_RUN_MAX = 0x1FFF
_FIXED = struct.Struct("!BBHIIHHI")


def transport_sequence(data: bytes, ext_id: int) -> int | None:
    """The transport-wide sequence number in ``data``'s RFC 8285 header extension, if any.

    Only the one-byte form (``0xBEDE``, §4.2) is searched, the form browsers use for it; a
    two-byte-form header (§4.3) yields None. Cheap: no parse beyond walking the elements.
    """
    if not data[0] & 0x10:
        return None
    i = 12 + 4 * (data[0] & 0x0F)
    if len(data) < i + 4 or data[i] != 0xBE or data[i + 1] != 0xDE:
        return None
    end = i + 4 + 4 * ((data[i + 2] << 8) | data[i + 3])
    if end > len(data):
        return None
    i += 4
    while i < end:
        b = data[i]
        if b == 0:  # padding byte between elements
            i += 1
            continue
        element_id = b >> 4
        if element_id == 15:
            return None
        size = (b & 0x0F) + 1
        if element_id == ext_id:
            return (data[i + 1] << 8) | data[i + 2] if size == 2 and i + 3 <= end else None
        i += 1 + size
    return None


@dataclass(slots=True)
class Feedback:
    """One parsed transport-wide feedback packet: arrival time (µs, on the reference-time
    clock) per transport sequence number, None for packets reported lost."""

    sender_ssrc: int
    media_ssrc: int
    base_seq: int
    count: int
    arrivals: dict[int, int | None] = field(default_factory=dict)


def _chunks(symbols: list[int]) -> list[int]:
    """Encode status symbols as chunks: runs of ≥ 7 equal symbols as run-length chunks,
    otherwise one-bit vectors (14 symbols) when none is large, else two-bit vectors (7)."""
    out: list[int] = []
    i, n = 0, len(symbols)
    while i < n:
        run = 1
        while i + run < n and symbols[i + run] == symbols[i] and run < _RUN_MAX:
            run += 1
        if run >= 7:
            out.append((symbols[i] << 13) | run)
            i += run
            continue
        block = symbols[i : i + 14]
        if LARGE_DELTA not in block:
            chunk = 0x8000
            for k, s in enumerate(block):
                chunk |= s << (13 - k)
            out.append(chunk)
            i += 14
            continue
        chunk = 0xC000
        for k, s in enumerate(symbols[i : i + 7]):
            chunk |= s << (12 - 2 * k)
        out.append(chunk)
        i += 7
    return out


def build_feedback(
    sender_ssrc: int,
    media_ssrc: int,
    base_seq: int,
    arrivals: list[int | None],
    feedback_count: int,
) -> bytes:
    """One feedback packet for ``arrivals`` (µs, or None if not received) of the packets
    numbered ``base_seq``, ``base_seq + 1`` ... (§3.1). The first arrival must be set; deltas
    must fit in 16 signed bits of 250 µs (``TransportFeedbackRecorder`` guarantees both)."""
    first = next(a for a in arrivals if a is not None)
    reference = first // REFERENCE_US
    previous = reference * REFERENCE_US
    symbols: list[int] = []
    deltas = bytearray()
    for arrival in arrivals:
        if arrival is None:
            symbols.append(NOT_RECEIVED)
            continue
        # rounding each arrival (not each difference) keeps the sum of the deltas exact
        delta = arrival // DELTA_US - previous // DELTA_US
        previous = arrival
        if 0 <= delta <= 0xFF:
            symbols.append(SMALL_DELTA)
            deltas.append(delta)
        else:
            symbols.append(LARGE_DELTA)
            deltas += struct.pack("!h", delta)
    chunks = _chunks(symbols)
    body = struct.pack(f"!{len(chunks)}H", *chunks) + bytes(deltas)
    body += bytes(-len(body) % 4)
    length = (_FIXED.size + len(body)) // 4 - 1
    head = _FIXED.pack(
        0x80 | RTCP_RTPFB_TWCC,
        RTCP_RTPFB,
        length,
        sender_ssrc,
        media_ssrc,
        base_seq & 0xFFFF,
        len(arrivals),
        ((reference & 0xFFFFFF) << 8) | (feedback_count & 0xFF),
    )
    return head + body


def parse_feedback(data: bytes) -> Feedback:
    """Parse one transport-wide feedback packet (the inverse of ``build_feedback``)."""
    if len(data) < _FIXED.size or data[1] != RTCP_RTPFB or data[0] & 0x1F != RTCP_RTPFB_TWCC:
        raise ValueError("not a transport-wide feedback packet")
    _, _, length, sender, media, base, count, ref_fb = _FIXED.unpack_from(data)
    end = 4 * (length + 1)
    if end > len(data):
        raise ValueError("truncated feedback packet")
    reference = ref_fb >> 8
    if reference & 0x800000:
        reference -= 0x1000000
    symbols: list[int] = []
    i = _FIXED.size
    while len(symbols) < count:
        if i + 2 > end:
            raise ValueError("truncated packet chunks")
        chunk = (data[i] << 8) | data[i + 1]
        i += 2
        if not chunk & 0x8000:
            symbols += [(chunk >> 13) & 0x3] * (chunk & _RUN_MAX)
        elif chunk & 0x4000:
            symbols += [(chunk >> (12 - 2 * k)) & 0x3 for k in range(7)]
        else:
            symbols += [(chunk >> (13 - k)) & 0x1 for k in range(14)]
    feedback = Feedback(sender, media, base, count)
    time_us = reference * REFERENCE_US
    for k, symbol in enumerate(symbols[:count]):
        seq = (base + k) & 0xFFFF
        if symbol == NOT_RECEIVED:
            feedback.arrivals[seq] = None
            continue
        if symbol == SMALL_DELTA:
            if i + 1 > end:
                raise ValueError("truncated receive deltas")
            time_us += data[i] * DELTA_US
            i += 1
        elif symbol == LARGE_DELTA:
            if i + 2 > end:
                raise ValueError("truncated receive deltas")
            time_us += struct.unpack_from("!h", data, i)[0] * DELTA_US
            i += 2
        else:
            raise ValueError("reserved status symbol")
        feedback.arrivals[seq] = time_us
    return feedback


class TransportFeedbackRecorder:
    """Arrivals of one transport's packets, reported as feedback packets on a timer.

    ``record`` is the only per-packet work (one list append); ``feedback`` unwraps, sorts
    and encodes what arrived since the last call, continuing from the highest sequence
    number already reported (late or reordered packets below it are dropped, as libwebrtc's
    receiver does once it has reported past them).
    """

    def __init__(self) -> None:
        self._pending: list[tuple[int, int]] = []
        self._next: int | None = None
        """Unwrapped sequence number the next feedback starts at."""
        self._highest: int | None = None
        self._count = 0

    def record(self, seq: int, arrival_us: int) -> None:
        self._pending.append((seq, arrival_us))

    def _unwrap(self, seq: int) -> int:
        """RFC 3550 A.1-style extension of a 16-bit number to the neighbourhood of the
        highest one seen."""
        highest = self._highest
        if highest is None:
            self._highest = seq
            return seq
        delta = (seq - highest) & 0xFFFF
        unwrapped = highest + delta - (0x10000 if delta >= 0x8000 else 0)
        self._highest = max(highest, unwrapped)
        return unwrapped

    def feedback(self, sender_ssrc: int, media_ssrc: int) -> list[bytes]:
        """Feedback packets for the arrivals recorded since the last call (maybe none)."""
        pending, self._pending = self._pending, []
        if not pending:
            return []
        arrivals: dict[int, int] = {}
        for seq, at in pending:
            arrivals.setdefault(self._unwrap(seq), at)
        start = self._next if self._next is not None else min(arrivals)
        seqs = sorted(s for s in arrivals if s >= start)
        packets: list[bytes] = []
        while seqs:
            base = seqs[0]
            top = min(seqs[-1], base + _MAX_STATUS - 1)
            column: list[int | None] = []
            previous = (arrivals[base] // REFERENCE_US) * REFERENCE_US
            for s in range(base, top + 1):
                arrival = arrivals.get(s)
                if arrival is not None:
                    if not -0x8000 <= arrival // DELTA_US - previous // DELTA_US <= 0x7FFF:
                        break  # does not fit a 16-bit delta: the next packet starts here
                    previous = arrival
                column.append(arrival)
            packets.append(build_feedback(sender_ssrc, media_ssrc, base, column, self._count))
            self._count += 1
            seqs = [s for s in seqs if s >= base + len(column)]
            self._next = base + len(column)
        return packets
