"""The one base of every error a client may see: a stable code, a message, details, a status.

Each package keeps its own fixed codes (``billing.errors``, ``media.errors``,
``signalling.errors``, ``api.errors``) on subclasses of :class:`CodedError`; the REST error
middleware and the socket dispatcher recognise them by this type alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class CodedError(Exception):
    """A failure the client caused or must know about."""

    status: int = 400
    """The HTTP status when it leaves through REST."""
    code: str = "ERROR"
    """Stable, machine-readable, never renamed once shipped (``INSUFFICIENT_BALANCE``)."""

    def __init__(
        self,
        message: str,
        details: Mapping[str, Any] | None = None,
        *,
        code: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = dict(details or {})
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
