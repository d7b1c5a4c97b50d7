"""Wire protocol: the envelope, its JSON Schemas and the frames the server sends.

Every frame is a JSON object ``{"type", "id", "data"}`` (JSON, RFC 8259, in WebSocket text frames,
RFC 6455 §5.6). Client frames carry a client-chosen ``id``; the server answers each one with an
``ack`` or an ``error`` carrying that id. Server events carry ``"id": null``. The protocol version
is the subprotocol name (``kundlinow.v1``, RFC 6455 §1.9) and an optional ``"v": 1`` per frame.
Schemas live in ``signalling/schemas/{client,server}/<type>.json`` (JSON Schema 2020-12) and are
enforced on every client frame.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import fastjsonschema
import orjson
from jsonschema import Draft202012Validator

from signalling import errors

PROTOCOL = "kundlinow.v1"
"""Subprotocol name negotiated in ``Sec-WebSocket-Protocol`` (RFC 6455 §4.1)."""
VERSION = 1
TOKEN_PREFIX = "bearer."
"""A second offered subprotocol ``bearer.<jwt>`` carries the token (never a URL parameter)."""

SCHEMA_DIR = Path(__file__).with_name("schemas")
_UUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)


@dataclass(frozen=True, slots=True)
class ClientMessage:
    """One validated client frame."""

    type: str
    """Message type, one of :data:`CLIENT_TYPES`."""
    id: str
    """Client-chosen id echoed in the ``ack``/``error``."""
    data: dict[str, Any]
    """Payload, valid against ``schemas/client/<type>.json``."""


class ProtocolError(errors.SignalError):
    """A frame that cannot be accepted; ``msg_id`` is its id when it could be read."""

    def __init__(
        self, code: str, message: str, msg_id: str | None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(code, message, details)
        self.msg_id = msg_id


Check = Callable[[Any], Any]
"""A compiled validator: returns the value or raises ``JsonSchemaValueException``."""


def _load(path: Path) -> Draft202012Validator:
    schema = json.loads(path.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _compile(path: Path) -> Check:
    """The same schema compiled to Python (fastjsonschema) for the per-frame hot path.

    The files only use keywords whose meaning draft-07 and 2020-12 share (type, properties,
    required, enum, const, pattern, lengths, bounds, items, oneOf, not), so compiling them with
    draft-07 semantics is exact; ``jsonschema`` still checks them as 2020-12 at load.
    """
    schema = json.loads(path.read_text())
    Draft202012Validator.check_schema(schema)
    schema["$schema"] = "http://json-schema.org/draft-07/schema#"
    schema.pop("$id", None)
    return fastjsonschema.compile(schema, formats={"uuid": _UUID_RE.pattern})


@cache
def client_validators() -> dict[str, Draft202012Validator]:
    """Validator per client message type (loaded once per process; the files never change)."""
    return {p.stem: _load(p) for p in sorted((SCHEMA_DIR / "client").glob("*.json"))}


@cache
def client_checks() -> dict[str, Check]:
    """Compiled validator per client message type (the runtime path)."""
    return {p.stem: _compile(p) for p in sorted((SCHEMA_DIR / "client").glob("*.json"))}


@cache
def envelope_check() -> Check:
    return _compile(SCHEMA_DIR / "envelope.json")


@cache
def server_validators() -> dict[str, Draft202012Validator]:
    """Validator per server frame type; the tests check every frame the server sends."""
    return {p.stem: _load(p) for p in sorted((SCHEMA_DIR / "server").glob("*.json"))}


@cache
def envelope_validator() -> Draft202012Validator:
    return _load(SCHEMA_DIR / "envelope.json")


def _first_error(check: Check, instance: Any) -> dict[str, Any] | None:
    try:
        check(instance)
    except fastjsonschema.JsonSchemaValueException as error:
        path = "/".join(str(p) for p in error.path[1:])
        return {"path": path, "reason": str(error.message)[:200]}
    return None


_LEADING_ID = re.compile(
    r'\s*\{\s*(?:"type"\s*:\s*"[a-z_]{0,32}"\s*,\s*)?"id"\s*:\s*"([A-Za-z0-9_.:\-]{1,64})"'
)


def _leading_id(text: str) -> str | None:
    """The id of a frame too large to parse, when it is written first (or after the type)."""
    match = _LEADING_ID.match(text[:256])
    return match.group(1) if match else None


def decode(text: str | bytes, max_bytes: int) -> ClientMessage:
    """Parse and validate one client frame or raise :class:`ProtocolError` with a stable code."""
    size = len(text.encode() if isinstance(text, str) else text)
    if size > max_bytes:
        head = text[:256] if isinstance(text, str) else text[:256].decode("utf-8", "replace")
        raise ProtocolError(
            errors.FRAME_TOO_LARGE,
            "frame too large",
            _leading_id(head),
            {"max_bytes": max_bytes, "bytes": size},
        )
    try:
        # Stricter than json.loads: NaN and Infinity (not JSON), lone surrogates (RFC 8259 §8.2)
        # and nesting beyond 1024 are refused; integers beyond 64 bits become floats (§9).
        raw = orjson.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ProtocolError(errors.INVALID_JSON, "frame is not valid JSON", None) from None
    msg_id = raw.get("id") if isinstance(raw, dict) else None
    if not isinstance(msg_id, str) or not 1 <= len(msg_id) <= 64:
        msg_id = None
    problem = _first_error(envelope_check(), raw)
    if problem is not None:
        if isinstance(raw, dict) and "v" in raw and raw["v"] != VERSION:
            raise ProtocolError(
                errors.UNSUPPORTED_VERSION, "unsupported protocol version", msg_id,
                {"supported": [VERSION]},
            )
        raise ProtocolError(errors.INVALID_MESSAGE, "malformed envelope", msg_id, problem)
    msg_id = str(raw["id"])  # the envelope schema guarantees a 1-64 char string
    kind: str = raw["type"]
    check = client_checks().get(kind)
    if check is None:
        raise ProtocolError(errors.UNKNOWN_TYPE, f"unknown message type {kind!r}", msg_id)
    data = raw.get("data", {})
    problem = _first_error(check, data)
    if problem is not None:
        raise ProtocolError(errors.INVALID_MESSAGE, f"invalid {kind} message", msg_id, problem)
    return ClientMessage(kind, msg_id, data)


def _dump(frame: dict[str, Any]) -> str:
    return orjson.dumps(frame, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def event(kind: str, data: dict[str, Any]) -> str:
    """A server-initiated frame."""
    return _dump({"type": kind, "id": None, "data": data})


def ack(msg_id: str, data: dict[str, Any] | None = None) -> str:
    return _dump({"type": "ack", "id": msg_id, "data": data or {}})


def error(
    msg_id: str | None, code: str, message: str, details: dict[str, Any] | None = None
) -> str:
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return _dump({"type": "error", "id": msg_id, "data": body})


CLIENT_TYPES = frozenset(p.stem for p in (SCHEMA_DIR / "client").glob("*.json"))
