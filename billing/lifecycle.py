"""A consultation's states, its one transition table and the values billing returns.

requested --accept--> active --end/tick--> ended; requested --reject/end/timeout--> ended;
ended is final. `Statement` is the receipt of an ended consultation.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from billing.errors import BillingError, InvalidTransition


class Mode(enum.StrEnum):
    CHAT = "chat"
    VOICE = "voice"
    VIDEO = "video"


class State(enum.StrEnum):
    REQUESTED = "requested"
    ACTIVE = "active"
    ENDED = "ended"


class EndReason(enum.StrEnum):
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    TIMEOUT = "timeout"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    DISCONNECTED = "disconnected"
    ADMIN = "admin"


class Unserved(enum.StrEnum):
    """Why a consultation was refunded automatically at its end."""

    NO_MEDIA = "no_media"
    """A voice or video call that never carried media."""
    UNANSWERED = "unanswered"
    """A chat the consultant did not answer within its first minute."""


TRANSITIONS: dict[State, frozenset[State]] = {
    State.REQUESTED: frozenset({State.ACTIVE, State.ENDED}),
    State.ACTIVE: frozenset({State.ENDED}),
    State.ENDED: frozenset(),
}
"""The one transition table; ended is final."""


def check_transition(current: State, new: State) -> None:
    """Raise `InvalidTransition` unless current -> new is in the table."""
    if new not in TRANSITIONS[current]:
        raise InvalidTransition(current.value, new.value)


class InvalidRequest(BillingError):
    status = 422
    code = "VALIDATION_FAILED"


@dataclass(frozen=True, slots=True)
class Consultation:
    """A consultation row (money fields in paise)."""

    id: uuid.UUID
    caller_id: uuid.UUID
    consultant_id: uuid.UUID
    mode: Mode
    state: State
    end_reason: EndReason | None
    rate_paise: int
    requested_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    minutes_charged: int
    amount_charged_paise: int
    """Paid from the caller's wallet (free minutes excluded)."""
    promo_paise: int = 0
    """Paid by promotions (free first minutes)."""
    consultant_share_paise: int = 0
    refunded_paise: int = 0
    free_minutes: int = 0
    commission_percent: int = 0
    minute_seconds: int = 60
    media_started_at: datetime | None = None
    """When signalling first saw media flow (voice/video)."""
    unserved: Unserved | None = None
    """Why the consultation was not owed at all (every charged minute reversed at its end)."""
    auto_refunded_paise: int = 0
    """What that returned to the caller's wallet."""

    @classmethod
    def from_row(cls, r: asyncpg.Record) -> Consultation:
        return cls(
            id=r["id"],
            caller_id=r["caller_id"],
            consultant_id=r["consultant_id"],
            mode=Mode(r["mode"]),
            state=State(r["state"]),
            end_reason=EndReason(r["end_reason"]) if r["end_reason"] else None,
            rate_paise=r["rate_paise"],
            requested_at=r["requested_at"],
            started_at=r["started_at"],
            ended_at=r["ended_at"],
            minutes_charged=r["minutes_charged"],
            amount_charged_paise=r["amount_charged_paise"],
            promo_paise=r["promo_paise"],
            consultant_share_paise=r["consultant_share_paise"],
            refunded_paise=r["refunded_paise"],
            free_minutes=r["free_minutes"],
            commission_percent=r["commission_percent"],
            minute_seconds=r["minute_seconds"],
            media_started_at=r["media_started_at"],
            unserved=Unserved(r["unserved"]) if r["unserved"] else None,
            auto_refunded_paise=r["auto_refunded_paise"],
        )

    def to_json(self) -> dict[str, Any]:
        def ts(d: datetime | None) -> str | None:
            return d.isoformat() if d else None

        return {
            "id": str(self.id),
            "caller_id": str(self.caller_id),
            "consultant_id": str(self.consultant_id),
            "mode": self.mode.value,
            "state": self.state.value,
            "end_reason": self.end_reason.value if self.end_reason else None,
            "rate_paise": self.rate_paise,
            "requested_at": ts(self.requested_at),
            "started_at": ts(self.started_at),
            "ended_at": ts(self.ended_at),
            "minutes_charged": self.minutes_charged,
            "amount_charged_paise": self.amount_charged_paise,
            "promo_paise": self.promo_paise,
            "free_minutes": self.free_minutes,
            "refunded_paise": self.refunded_paise,
            "unserved": self.unserved.value if self.unserved else None,
            "auto_refunded_paise": self.auto_refunded_paise,
        }


@dataclass(frozen=True, slots=True)
class Statement:
    """Settlement of an ended consultation."""

    consultation: Consultation
    minutes: int
    amount_paise: int
    """Paid by the caller's wallet."""
    promo_paise: int
    """Paid by promotions."""
    consultant_share_paise: int
    platform_paise: int
    refunded_paise: int

    @classmethod
    def of(cls, c: Consultation) -> Statement:
        return cls(
            consultation=c,
            minutes=c.minutes_charged,
            amount_paise=c.amount_charged_paise,
            promo_paise=c.promo_paise,
            consultant_share_paise=c.consultant_share_paise,
            platform_paise=c.amount_charged_paise + c.promo_paise - c.consultant_share_paise,
            refunded_paise=c.refunded_paise,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "consultation": self.consultation.to_json(),
            "minutes": self.minutes,
            "amount_paise": self.amount_paise,
            "promo_paise": self.promo_paise,
            "consultant_share_paise": self.consultant_share_paise,
            "platform_paise": self.platform_paise,
            "refunded_paise": self.refunded_paise,
            "auto_refund": (
                {
                    "reason": c.unserved.value,
                    "amount_paise": c.auto_refunded_paise,
                }
                if (c := self.consultation).unserved
                else None
            ),
        }


@dataclass(slots=True)
class TickReport:
    """What one tick did."""

    charged_minutes: int = 0
    charged_paise: int = 0
    consultations_charged: int = 0
    ended_insufficient: list[uuid.UUID] = field(default_factory=list)
    timed_out: list[uuid.UUID] = field(default_factory=list)
    holds_voided: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "charged_minutes": self.charged_minutes,
            "charged_paise": self.charged_paise,
            "consultations_charged": self.consultations_charged,
            "ended_insufficient": len(self.ended_insufficient),
            "timed_out": len(self.timed_out),
            "holds_voided": self.holds_voided,
            "seconds": round(self.seconds, 4),
        }
