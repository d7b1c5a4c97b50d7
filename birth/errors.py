"""Fixed error values of birth profiles, each with the HTTP status and stable code the API uses."""

from __future__ import annotations

from typing import Any

from core.errors import CodedError


class BirthError(CodedError):
    """Base of every birth-profile error (rendered by api.errors' middleware as a CodedError)."""

    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message, details, code=code, status=status)


def bad_input(code: str, message: str, **details: Any) -> BirthError:
    """400 with a stable code: INVALID_DATE, INVALID_TIME, TIME_DOES_NOT_EXIST, …"""
    return BirthError(400, code, message, **details)


def not_found() -> BirthError:
    return BirthError(404, "BIRTH_PROFILE_NOT_FOUND", "birth profile not found")


def forbidden() -> BirthError:
    return BirthError(403, "FORBIDDEN", "you may not read this birth profile")
