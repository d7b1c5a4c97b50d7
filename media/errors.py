"""Fixed error values of the media package; the signalling layer maps them to socket errors."""

from __future__ import annotations

from enum import StrEnum


class MediaErrorCode(StrEnum):
    """Stable error codes (never renamed once shipped)."""

    BAD_SDP = "BAD_SDP"
    BAD_CANDIDATE = "BAD_CANDIDATE"
    GLARE = "GLARE"
    NO_OFFER = "NO_OFFER"
    NOT_JOINED = "NOT_JOINED"
    NOT_ALLOWED = "NOT_ALLOWED"
    CLOSED = "CLOSED"


class MediaError(Exception):
    """A media operation failed because of the caller's input or state."""

    def __init__(self, code: MediaErrorCode | str, message: str = "") -> None:
        self.code = str(code)
        self.message = message or self.code
        super().__init__(f"{self.code}: {self.message}")
