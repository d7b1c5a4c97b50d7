"""Peeking at STUN messages on a shared port without a full parse: the ICE username of an
incoming Binding request, and the class of an outgoing message.

A node's shared UDP port (``media.udp_mux``) has to find which ICE agent an unknown sender
talks to. The answer is in the request itself: an ICE connectivity check carries a USERNAME
attribute "<receiver's ufrag>:<sender's ufrag>" (RFC 8445 §7.2.2, RFC 5389 §15.3), and the
receiver's ufrag is the one this node put in its SDP (RFC 8839 §5.4).

Only the fixed header (RFC 5389 §6) and the attribute list are walked; MESSAGE-INTEGRITY is
left to the ICE agent the request is routed to, which checks it before answering
(RFC 8445 §7.3).
"""

from __future__ import annotations

import struct

STUN_HEADER_BYTES = 20
"""RFC 5389 §6: type (2), length (2), magic cookie (4), transaction id (12)."""
MAGIC_COOKIE = 0x2112A442
BINDING_REQUEST = 0x0001
"""Method Binding (0x001) in class Request (RFC 5389 §6, §18.1)."""
BINDING_SUCCESS = 0x0101
"""Method Binding in class Success Response (RFC 5389 §6: C1 C0 = 1 0)."""
USERNAME = 0x0006
"""RFC 5389 §18.2."""
MAX_USERNAME_BYTES = 513
"""RFC 5389 §15.3: the value is less than 513 bytes."""

_HEADER = struct.Struct("!HHI")
_ATTRIBUTE = struct.Struct("!HH")


def is_stun(first_byte: int) -> bool:
    """RFC 7983 §7: a first byte of 0..3 is STUN (the two top bits of every STUN message are
    zero, RFC 5389 §6); 20..63 is DTLS, 128..191 RTP/RTCP."""
    return first_byte < 4


def is_binding_success(data: bytes) -> bool:
    """Whether ``data`` is a Binding success response: an ICE agent sends one only to a
    request it authenticated (RFC 8445 §7.3, RFC 5389 §10.1.2)."""
    return len(data) >= STUN_HEADER_BYTES and data[0] == 0x01 and data[1] == 0x01


def is_error_response(data: bytes) -> bool:
    """Whether ``data`` is a STUN error response (RFC 5389 §6: class bits C1 = 0x0100 and
    C0 = 0x0010 both set), such as the 400/401 an agent returns to an unauthenticated check."""
    return (
        len(data) >= STUN_HEADER_BYTES and data[0] < 4 and bool(data[0] & 0x01 and data[1] & 0x10)
    )


def request_username(data: memoryview, size: int) -> str | None:
    """The USERNAME of the STUN Binding request in ``data[:size]``, or None if the datagram
    is not a well-formed Binding request carrying one (responses, indications, other methods,
    truncated or garbage input)."""
    if size < STUN_HEADER_BYTES:
        return None
    message_type, length, cookie = _HEADER.unpack_from(data, 0)
    if (
        message_type != BINDING_REQUEST
        or cookie != MAGIC_COOKIE
        or length % 4
        or STUN_HEADER_BYTES + length > size
    ):
        return None
    offset = STUN_HEADER_BYTES
    end = STUN_HEADER_BYTES + length
    while offset + 4 <= end:
        attribute, value_length = _ATTRIBUTE.unpack_from(data, offset)
        offset += 4
        if offset + value_length > end:
            return None
        if attribute == USERNAME:
            if value_length >= MAX_USERNAME_BYTES:
                return None
            try:
                return bytes(data[offset : offset + value_length]).decode("utf-8")
            except UnicodeDecodeError:
                return None
        offset += (value_length + 3) & ~3  # values are padded to 4 bytes (RFC 5389 §15)
    return None


def receiver_ufrag(username: str) -> str:
    """The receiving agent's ufrag: the part of "<receiver>:<sender>" before the colon
    (RFC 8445 §7.2.2)."""
    return username.partition(":")[0]
