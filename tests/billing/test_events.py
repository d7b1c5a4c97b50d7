"""Billing's bus events: each encodes to JSON and decodes back to the same value."""

from __future__ import annotations

import uuid

import orjson

from billing import events
from billing.errors import InsufficientBalance
from core.errors import CodedError
from media.errors import MediaError, MediaErrorCode
from signalling.errors import SignalError


def test_every_event_round_trips_through_json() -> None:
    ids = [uuid.uuid4() for _ in range(3)]
    for event in (
        events.ConsultStateChanged({"id": str(ids[0]), "state": "active"}),
        events.MinuteCharged(ids[0], ids[1], ids[2], 3, 1500, 8500),
        events.MinuteCharged(ids[0], ids[1], ids[2], 1, 0, None),
        events.BalanceLow(ids[0], ids[1], ids[2], 2),
    ):
        wire = orjson.loads(orjson.dumps(event.encode()))
        assert wire["event"] == event.KIND
        assert events.decode(wire) == event


def test_an_unknown_kind_decodes_to_none() -> None:
    assert events.decode({"event": "from_a_newer_node"}) is None


def test_every_domain_error_is_a_coded_error_with_its_stable_code() -> None:
    errors: list[CodedError] = [
        InsufficientBalance("no money", needed_paise=100),
        MediaError(MediaErrorCode.GLARE, "offer collision"),
        SignalError("FORBIDDEN", "not yours"),
    ]
    assert [(e.code, e.status) for e in errors] == [
        ("INSUFFICIENT_BALANCE", 402), ("GLARE", 400), ("FORBIDDEN", 403)
    ]
    assert errors[0].details == {"needed_paise": 100}
    assert errors[1].message == "offer collision"
