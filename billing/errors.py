"""Billing's fixed error values. Each carries the HTTP status and stable code the API renders."""

from __future__ import annotations

from typing import Any

from core.errors import CodedError


class BillingError(CodedError):
    """Base of every billing domain error (rendered by api.errors' middleware)."""

    code = "BILLING_ERROR"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message, details)


class NotFound(BillingError):
    status = 404
    code = "NOT_FOUND"


class Forbidden(BillingError):
    status = 403
    code = "FORBIDDEN"


class InsufficientBalance(BillingError):
    status = 402
    code = "INSUFFICIENT_BALANCE"


class InsufficientEarnings(BillingError):
    status = 409
    code = "INSUFFICIENT_EARNINGS"


class IdempotencyConflict(BillingError):
    """A transfer's idempotency key was reused with different content."""

    status = 409
    code = "IDEMPOTENCY_CONFLICT"


class ConsultantUnavailable(BillingError):
    status = 409
    code = "CONSULTANT_UNAVAILABLE"


class AlreadyLive(BillingError):
    status = 409
    code = "ALREADY_LIVE"


class InvalidTransition(BillingError):
    status = 409
    code = "INVALID_TRANSITION"

    def __init__(self, current: str, new: str) -> None:
        super().__init__(f"cannot go from {current} to {new}", current=current, new=new)


class HoldResolved(BillingError):
    status = 409
    code = "HOLD_ALREADY_RESOLVED"


class InvalidAmount(BillingError):
    status = 422
    code = "INVALID_AMOUNT"


class PayoutPending(BillingError):
    status = 409
    code = "PAYOUT_PENDING"


class InvalidSignature(BillingError):
    status = 400
    code = "INVALID_SIGNATURE"


class AmountMismatch(BillingError):
    status = 400
    code = "AMOUNT_MISMATCH"


class GatewayUnavailable(BillingError):
    status = 502
    code = "GATEWAY_UNAVAILABLE"


class SimulatorDisabled(BillingError):
    status = 404
    code = "SIMULATOR_DISABLED"


class BirthProfileNotFound(BillingError):
    """A consultation requested with a birth profile that is not the caller's (issue 15)."""

    status = 404
    code = "BIRTH_PROFILE_NOT_FOUND"
