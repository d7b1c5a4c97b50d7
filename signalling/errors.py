"""Stable error codes of the signalling protocol (sent in ``error`` frames)."""

from __future__ import annotations

from typing import Any

UNAUTHENTICATED = "UNAUTHENTICATED"
AUTH_TIMEOUT = "AUTH_TIMEOUT"
INVALID_JSON = "INVALID_JSON"
INVALID_MESSAGE = "INVALID_MESSAGE"
UNKNOWN_TYPE = "UNKNOWN_TYPE"
UNSUPPORTED_VERSION = "UNSUPPORTED_VERSION"
FRAME_TOO_LARGE = "FRAME_TOO_LARGE"
RATE_LIMITED = "RATE_LIMITED"
TOO_MANY_CONNECTIONS = "TOO_MANY_CONNECTIONS"
FORBIDDEN = "FORBIDDEN"
NOT_FOUND = "NOT_FOUND"
NOT_JOINED = "NOT_JOINED"
CONSULT_NOT_ACTIVE = "CONSULT_NOT_ACTIVE"
CONSULTANT_OFFLINE = "CONSULTANT_OFFLINE"
CONSULTANT_UNAVAILABLE = "CONSULTANT_UNAVAILABLE"
MEDIA_UNAVAILABLE = "MEDIA_UNAVAILABLE"
UPLOAD_NOT_FOUND = "UPLOAD_NOT_FOUND"
INTERNAL = "INTERNAL"

# WebSocket close codes (RFC 6455 §7.4; 4000-4999 are for applications).
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_SERVICE_RESTART = 1012
CLOSE_TRY_AGAIN = 1013
CLOSE_UNAUTHENTICATED = 4401
CLOSE_TOO_MANY_CONNECTIONS = 4429


_STATUS = {FORBIDDEN: 403, NOT_FOUND: 404, UNAUTHENTICATED: 401, CONSULT_NOT_ACTIVE: 409}


class SignalError(Exception):
    """A client message failed; becomes an ``error`` frame carrying the message's id.

    ``status`` lets the REST error middleware render the same error over HTTP.
    """

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}
        self.status = _STATUS.get(code, 400)
