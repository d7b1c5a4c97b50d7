"""Fixed error values of the media package; the signalling layer maps them to socket errors."""

from __future__ import annotations

from enum import StrEnum

from core.errors import CodedError


class MediaErrorCode(StrEnum):
    """Stable error codes (never renamed once shipped)."""

    BAD_SDP = "BAD_SDP"
    BAD_CANDIDATE = "BAD_CANDIDATE"
    GLARE = "GLARE"
    NO_OFFER = "NO_OFFER"
    NOT_JOINED = "NOT_JOINED"
    NOT_ALLOWED = "NOT_ALLOWED"
    CLOSED = "CLOSED"


class MediaError(CodedError):
    """A media operation failed because of the caller's input or state."""

    def __init__(self, code: MediaErrorCode | str, message: str = "") -> None:
        super().__init__(message or str(code), code=str(code))

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"
