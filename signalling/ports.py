"""What the hub needs from its neighbours, as narrow interfaces.

The consultation record and its money belong to ``billing`` (``ConsultationService``); the hub
sees it through :class:`Consultations` (typed with billing's ``Mode``, ``State`` and
``EndReason``), and :class:`BillingConsultations` adapts the real service. Media
(``media.MediaEngine``) is seen through :class:`MediaPort`.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from billing.consultations import (
    Consultation,
    ConsultationService,
    EndReason,
    Mode,
    State,
)


def jsonable(value: Any) -> Any:
    """Plain JSON values from dataclasses, enums, UUIDs, datetimes and money wrappers (for the
    ``details`` of domain errors, which may carry any of them)."""
    to_json = getattr(value, "to_json", None)
    if callable(to_json):
        return to_json()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.fields(value)
        if len(fields) == 1 and fields[0].name == "value":  # e.g. billing.money.Paise
            return jsonable(getattr(value, "value"))  # noqa: B009
        return {f.name: jsonable(getattr(value, f.name)) for f in fields}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class ConsultView:
    """The hub's view of a consultation."""

    id: UUID
    caller_id: UUID
    consultant_id: UUID
    mode: Mode
    state: State
    end_reason: EndReason | None
    raw: dict[str, Any]
    """The whole record as JSON, as sent to clients."""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ConsultView:
        """From ``Consultation.to_json()`` (as carried by ``consult_state`` bus events)."""
        reason = data.get("end_reason")
        return cls(
            id=UUID(str(data["id"])),
            caller_id=UUID(str(data["caller_id"])),
            consultant_id=UUID(str(data["consultant_id"])),
            mode=Mode(data["mode"]),
            state=State(data["state"]),
            end_reason=None if reason is None else EndReason(reason),
            raw=dict(data),
        )

    @classmethod
    def of(cls, c: Consultation) -> ConsultView:
        return cls(c.id, c.caller_id, c.consultant_id, c.mode, c.state, c.end_reason, c.to_json())

    def parties(self) -> tuple[UUID, UUID]:
        return (self.caller_id, self.consultant_id)


class Consultations(Protocol):
    async def request(
        self,
        caller_id: UUID,
        consultant_id: UUID,
        mode: Mode,
        *,
        birth_profile_id: UUID | None = None,
    ) -> ConsultView: ...

    async def accept(self, consultation_id: UUID, consultant_id: UUID) -> ConsultView: ...

    async def reject(self, consultation_id: UUID, consultant_id: UUID) -> ConsultView: ...

    async def end(
        self,
        consultation_id: UUID,
        reason: EndReason,
        *,
        actor_id: UUID | None = None,
        ended_at: datetime | None = None,
    ) -> dict[str, Any]:
        """Ends (idempotently) and returns the statement as JSON values."""

    async def get(self, consultation_id: UUID) -> ConsultView: ...

    async def live_for_consultant(self, consultant_id: UUID) -> ConsultView | None: ...

    async def start_shortfall(self, caller_id: UUID, consultant_id: UUID, mode: str) -> int:
        """Paise the caller lacks to start now (0 when they could)."""


class BillingConsultations:
    """:class:`Consultations` over billing's :class:`ConsultationService`."""

    def __init__(self, service: ConsultationService) -> None:
        self._service = service

    async def request(
        self,
        caller_id: UUID,
        consultant_id: UUID,
        mode: Mode,
        *,
        birth_profile_id: UUID | None = None,
    ) -> ConsultView:
        return ConsultView.of(
            await self._service.request(
                caller_id, consultant_id, mode, birth_profile_id=birth_profile_id
            )
        )

    async def accept(self, consultation_id: UUID, consultant_id: UUID) -> ConsultView:
        return ConsultView.of(await self._service.accept(consultation_id, consultant_id))

    async def reject(self, consultation_id: UUID, consultant_id: UUID) -> ConsultView:
        return ConsultView.of(await self._service.reject(consultation_id, consultant_id))

    async def end(
        self,
        consultation_id: UUID,
        reason: EndReason,
        *,
        actor_id: UUID | None = None,
        ended_at: datetime | None = None,
    ) -> dict[str, Any]:
        statement = await self._service.end(
            consultation_id, reason, actor_id=actor_id, ended_at=ended_at
        )
        return statement.to_json()

    async def start_shortfall(self, caller_id: UUID, consultant_id: UUID, mode: str) -> int:
        return int(
            await self._service.start_shortfall(caller_id, consultant_id, Mode(mode))
        )

    async def get(self, consultation_id: UUID) -> ConsultView:
        return ConsultView.of(await self._service.get(consultation_id))

    async def live_for_consultant(self, consultant_id: UUID) -> ConsultView | None:
        found = await self._service.live_for_consultant(consultant_id)
        return None if found is None else ConsultView.of(found)


SendSignal = Callable[[str, str, dict[str, Any]], Awaitable[None]]
"""``send_signal(room_id, participant_id, message)``: the media engine's way to reach a client
(server-initiated offers, trickled candidates)."""


class MediaPort(Protocol):
    async def join(
        self,
        room_id: str,
        participant_id: str,
        *,
        can_publish: bool = True,
        kinds: Collection[str] = ("audio", "video"),
    ) -> Any:
        """A peer connection for the participant, sending and receiving only ``kinds``."""

    async def handle_offer(self, room_id: str, participant_id: str, sdp: str) -> str: ...

    async def handle_answer(self, room_id: str, participant_id: str, sdp: str) -> Any: ...

    async def add_ice_candidate(
        self, room_id: str, participant_id: str, candidate: dict[str, Any] | None
    ) -> Any: ...

    async def leave(self, room_id: str, participant_id: str) -> Any: ...

    async def close_room(self, room_id: str) -> Any: ...
