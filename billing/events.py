"""Billing's events on the bus topic ``consultations``, each with one encode and one decode.

Published after the transaction that caused them commits; the signalling hubs of every node
turn them into socket events (``signalling.fanout``). On the wire they are JSON objects whose
``event`` names the kind, so they cross nodes through Redis unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from uuid import UUID

TOPIC = "consultations"


@dataclass(frozen=True, slots=True)
class ConsultStateChanged:
    """A consultation was requested, accepted, rejected or ended."""

    KIND: ClassVar[str] = "consult_state"
    consultation: dict[str, Any]
    """``billing.consultations.Consultation.to_json()``, as sent to the clients."""

    def encode(self) -> dict[str, Any]:
        return {"event": self.KIND, "consultation": self.consultation}

    @classmethod
    def decode(cls, event: Mapping[str, Any]) -> ConsultStateChanged:
        return cls(dict(event["consultation"]))


@dataclass(frozen=True, slots=True)
class MinuteCharged:
    """Minutes were charged (``billing_tick``): both parties see the count, the caller the
    balance."""

    KIND: ClassVar[str] = "billing_tick"
    consultation_id: UUID
    caller_id: UUID
    consultant_id: UUID
    minutes: int
    """Minutes charged so far."""
    amount_paise: int
    """Charged to the caller's wallet so far."""
    balance_paise: int | None
    """The caller's wallet balance after the charge."""

    def encode(self) -> dict[str, Any]:
        return {
            "event": self.KIND,
            "consultation_id": str(self.consultation_id),
            "caller_id": str(self.caller_id),
            "consultant_id": str(self.consultant_id),
            "minutes": self.minutes,
            "amount_paise": self.amount_paise,
            "balance_paise": self.balance_paise,
        }

    @classmethod
    def decode(cls, event: Mapping[str, Any]) -> MinuteCharged:
        balance = event.get("balance_paise")
        return cls(
            UUID(str(event["consultation_id"])), UUID(str(event["caller_id"])),
            UUID(str(event["consultant_id"])), int(event["minutes"]), int(event["amount_paise"]),
            None if balance is None else int(balance),
        )


@dataclass(frozen=True, slots=True)
class BalanceLow:
    """The caller's balance pays for at most two more minutes (``balance_warning``)."""

    KIND: ClassVar[str] = "balance_warning"
    consultation_id: UUID
    caller_id: UUID
    consultant_id: UUID
    minutes_left: int

    def encode(self) -> dict[str, Any]:
        return {
            "event": self.KIND,
            "consultation_id": str(self.consultation_id),
            "caller_id": str(self.caller_id),
            "consultant_id": str(self.consultant_id),
            "minutes_left": self.minutes_left,
        }

    @classmethod
    def decode(cls, event: Mapping[str, Any]) -> BalanceLow:
        return cls(
            UUID(str(event["consultation_id"])), UUID(str(event["caller_id"])),
            UUID(str(event["consultant_id"])), int(event["minutes_left"]),
        )


ConsultationEvent = ConsultStateChanged | MinuteCharged | BalanceLow

_KINDS: dict[str, type[ConsultStateChanged] | type[MinuteCharged] | type[BalanceLow]] = {
    kind.KIND: kind for kind in (ConsultStateChanged, MinuteCharged, BalanceLow)
}


def decode(event: Mapping[str, Any]) -> ConsultationEvent | None:
    """The event, or ``None`` for a kind this version does not know (a newer node's)."""
    kind = _KINDS.get(str(event.get("event")))
    return None if kind is None else kind.decode(event)
