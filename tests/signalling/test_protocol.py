"""The envelope and the JSON Schemas."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator

from signalling import protocol
from signalling.protocol import ProtocolError, decode

CID = "6f1c1d52-6d43-4d0c-9a51-0d3b2a1f0e11"


def test_every_schema_is_valid_and_types_match_docs() -> None:
    client = protocol.client_validators()
    server = protocol.server_validators()
    assert {"auth", "join_consult", "leave_consult", "message", "typing", "call_offer",
            "call_answer", "ice_candidate", "session_end", "consult_request", "accept",
            "reject", "read", "presence", "waitlist", "ping", "media_state"} <= set(client)
    assert {"ack", "error", "hello", "consult_request", "consult_state", "session_end",
            "message", "typing", "read", "presence", "billing_tick", "balance_warning",
            "waitlist", "call_offer", "call_answer", "ice_candidate", "media_state"} <= set(server)
    for v in [*client.values(), *server.values()]:
        Draft202012Validator.check_schema(v.schema)
    doc = (protocol.SCHEMA_DIR.parent.parent / "docs" / "PROTOCOL.md").read_text()
    for name in client:
        assert f"`{name}`" in doc, f"{name} is not documented in docs/PROTOCOL.md"


def test_decode_valid() -> None:
    msg = decode(json.dumps({"type": "join_consult", "id": "1", "data": {
        "consultation_id": CID, "since": 3}}), 65536)
    assert msg.type == "join_consult" and msg.id == "1" and msg.data["since"] == 3
    assert decode('{"type":"ping","id":"x","v":1}', 100).data == {}


@pytest.mark.parametrize(
    ("frame", "code", "msg_id"),
    [
        ("{", "INVALID_JSON", None),
        ('"x"', "INVALID_MESSAGE", None),
        ('{"type":"ping","id":""}', "INVALID_MESSAGE", None),
        ('{"type":"ping","id":"' + "a" * 65 + '"}', "INVALID_MESSAGE", None),
        ('{"type":"ping","id":"a","extra":1}', "INVALID_MESSAGE", "a"),
        ('{"type":"ping","id":"a","v":7}', "UNSUPPORTED_VERSION", "a"),
        ('{"type":"unknown_thing","id":"b"}', "UNKNOWN_TYPE", "b"),
        ('{"type":"message","id":"c","data":{"consultation_id":"' + CID + '"}}',
         "INVALID_MESSAGE", "c"),
        ('{"type":"message","id":"d","data":{"consultation_id":"' + CID
         + '","client_id":"k","text":""}}', "INVALID_MESSAGE", "d"),
        ('{"type":"typing","id":"e","data":{"consultation_id":"' + CID + '","typing":"yes"}}',
         "INVALID_MESSAGE", "e"),
        ('{"type":"media_state","id":"f","data":{"consultation_id":"' + CID + '","audio":false}}',
         "INVALID_MESSAGE", "f"),
        ('{"type":"media_state","id":"g","data":{"consultation_id":"' + CID
         + '","audio":0,"video":true}}', "INVALID_MESSAGE", "g"),
    ],
)
def test_decode_errors(frame: str, code: str, msg_id: str | None) -> None:
    with pytest.raises(ProtocolError) as err:
        decode(frame, 65536)
    assert err.value.code == code
    assert err.value.msg_id == msg_id


def test_too_large_reads_only_the_leading_id() -> None:
    frame = '{"type":"message","id":"k9","data":{"text":"' + "x" * 200 + '"}}'
    with pytest.raises(ProtocolError) as err:
        decode(frame, 100)
    assert err.value.code == "FRAME_TOO_LARGE" and err.value.msg_id == "k9"
    with pytest.raises(ProtocolError) as err:
        decode('{"data":{"id":"no"},"pad":"' + "x" * 200 + '"}', 100)
    assert err.value.msg_id is None


def test_server_frames() -> None:
    assert json.loads(protocol.ack("7", {"a": 1})) == {"type": "ack", "id": "7", "data": {"a": 1}}
    err = json.loads(protocol.error(None, "X_Y", "m", {"k": 1}))
    assert err == {"type": "error", "id": None, "data": {"code": "X_Y", "message": "m",
                                                         "details": {"k": 1}}}
    protocol.server_validators()["error"].validate(err["data"])
