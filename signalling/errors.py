"""Stable error codes of the signalling protocol (sent in ``error`` frames)."""

from __future__ import annotations

from typing import Any

from core.errors import CodedError

UNAUTHENTICATED = "UNAUTHENTICATED"
AUTH_TIMEOUT = "AUTH_TIMEOUT"
TOKEN_EXPIRED = "TOKEN_EXPIRED"
TOKEN_REVOKED = "TOKEN_REVOKED"
ACCOUNT_DISABLED = "ACCOUNT_DISABLED"
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
MEDIA_NOT_ALLOWED = "MEDIA_NOT_ALLOWED"
UPLOAD_NOT_FOUND = "UPLOAD_NOT_FOUND"
INSUFFICIENT_BALANCE = "INSUFFICIENT_BALANCE"
ALREADY_WAITLISTED = "ALREADY_WAITLISTED"
DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE"
"""The database connection was lost under the request (restart, failover): nothing was done;
sending the same message again (same ``client_id`` for chat) is safe."""
INTERNAL = "INTERNAL"

# WebSocket close codes (RFC 6455 §7.4; 4000-4999 are for applications).
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_SERVICE_RESTART = 1012
CLOSE_TRY_AGAIN = 1013
CLOSE_UNAUTHENTICATED = 4401
CLOSE_TOO_MANY_CONNECTIONS = 4429


_STATUS = {
    FORBIDDEN: 403,
    NOT_FOUND: 404,
    UNAUTHENTICATED: 401,
    CONSULT_NOT_ACTIVE: 409,
    CONSULTANT_OFFLINE: 409,
    CONSULTANT_UNAVAILABLE: 409,
    INSUFFICIENT_BALANCE: 402,
    ALREADY_WAITLISTED: 409,
    MEDIA_NOT_ALLOWED: 403,
    DATABASE_UNAVAILABLE: 503,
}


class SignalError(CodedError):
    """A client message failed; becomes an ``error`` frame carrying the message's id.

    ``status`` lets the REST error middleware render the same error over HTTP.
    """

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details, code=code, status=_STATUS.get(code, 400))
