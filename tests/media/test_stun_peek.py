"""Peeking at STUN on the shared port (media.stun_peek) agrees with aioice's full parser, and
the port's drop log (media.udp_mux.DropLog) stays quiet under a flood."""

from __future__ import annotations

import logging

import pytest
from aioice import stun

from media.stun_peek import (
    is_binding_success,
    is_error_response,
    is_stun,
    receiver_ufrag,
    request_username,
)
from media.udp_mux import DropLog


def message(cls: stun.Class, **attributes: object) -> bytes:
    m = stun.Message(message_method=stun.Method.BINDING, message_class=cls)
    for name, value in attributes.items():
        m.attributes[name] = value
    m.add_message_integrity(b"0123456789abcdef012345")
    m.add_fingerprint()
    return bytes(m)


def peek(data: bytes) -> str | None:
    buffer = bytearray(2048)
    buffer[: len(data)] = data
    return request_username(memoryview(buffer), len(data))


def test_username_of_a_check_with_other_attributes_before_it() -> None:
    data = message(stun.Class.REQUEST, PRIORITY=1853824767, USERNAME="Srvr0123abcdEFGH:brws")
    assert stun.parse_message(data).attributes["USERNAME"] == "Srvr0123abcdEFGH:brws"
    assert peek(data) == "Srvr0123abcdEFGH:brws"
    assert receiver_ufrag("Srvr0123abcdEFGH:brws") == "Srvr0123abcdEFGH"
    assert is_stun(data[0])


@pytest.mark.parametrize(
    "data",
    [
        message(stun.Class.REQUEST),  # no USERNAME
        message(stun.Class.RESPONSE, USERNAME="a:b"),  # not a request
        message(stun.Class.INDICATION, USERNAME="a:b"),
        message(stun.Class.REQUEST, USERNAME="a:b")[:30],  # truncated
        b"\x00\x01\x00\x08" + b"\x00" * 16 + b"\x00\x06\x00\x04ab",  # wrong magic cookie
        b"\x00\x01",  # shorter than a header
        bytes(range(200)),  # garbage
    ],
)
def test_no_username_where_there_is_none(data: bytes) -> None:
    assert peek(data) is None


def test_response_classes() -> None:
    success = message(stun.Class.RESPONSE)
    error = message(stun.Class.ERROR)
    request = message(stun.Class.REQUEST, USERNAME="a:b")
    assert is_binding_success(success) and not is_error_response(success)
    assert is_error_response(error) and not is_binding_success(error)
    assert not is_binding_success(request) and not is_error_response(request)
    dtls = bytes([22, 254, 253]) + bytes(30)
    assert not is_stun(dtls[0]) and not is_error_response(dtls)


def test_drop_log_counts_everything_and_logs_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    drops = DropLog(interval_s=10.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="media.udp_mux"):
        for _ in range(1000):
            drops.drop("unknown_address", ("192.0.2.1", 5000))
        now[0] += 10.0
        drops.drop("unknown_username", ("192.0.2.1", 5000))
    assert drops.counts == {"unknown_address": 1000, "unknown_username": 1}
    lines = [r for r in caplog.records if r.getMessage() == "udp_mux_dropped"]
    assert len(lines) == 2
    # the second line sums what was dropped since the first
    assert lines[1].dropped == {"unknown_address": 999, "unknown_username": 1}  # type: ignore[attr-defined]
