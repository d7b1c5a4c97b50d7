"""Admin refunds of a consultation to the caller's wallet: a correcting transfer plus audit."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import structlog

from billing import ledger
from billing.errors import InvalidAmount, InvalidTransition, NotFound
from billing.model import PLATFORM_REVENUE, Transfer
from billing.ports import HasPool
from core import audit as audit_log
from core.session_log import record_event

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Refund:
    consultation_id: uuid.UUID
    amount_paise: int
    consultant_part_paise: int
    platform_part_paise: int
    transfer_id: uuid.UUID
    replayed: bool


async def refund_consultation(
    db: HasPool,
    consultation_id: uuid.UUID,
    amount_paise: int,
    reason: str,
    actor_id: uuid.UUID,
    idempotency_key: str,
) -> Refund:
    """Return up to what the caller paid; the consultant's share and the platform's commission
    are reversed in proportion. Replaying `idempotency_key` returns the first refund."""
    if amount_paise <= 0:
        raise InvalidAmount("refund amount must be positive")
    key = f"refund:{consultation_id}:{idempotency_key}"
    async with db.pool.acquire() as conn, conn.transaction():
        c = await conn.fetchrow(
            "SELECT * FROM consultations WHERE id = $1 FOR UPDATE", consultation_id
        )
        if c is None:
            raise NotFound("consultation not found", consultation_id=str(consultation_id))
        if c["state"] != "ended":
            raise InvalidTransition(c["state"], "refunded")
        wallet_share = await conn.fetchval(
            "SELECT COALESCE(sum(consultant_share_paise), 0)::bigint FROM consultation_charges "
            "WHERE consultation_id = $1 AND source = 'wallet' AND reversal_transfer_id IS NULL",
            consultation_id,
        )
        paid = c["amount_charged_paise"]
        consultant_part = amount_paise * wallet_share // paid if paid else 0
        platform_part = amount_paise - consultant_part
        legs = [
            (c["caller_account_id"], amount_paise),
            (PLATFORM_REVENUE, -platform_part),
        ]
        if consultant_part:
            legs.append((c["consultant_account_id"], -consultant_part))
        transfer = Transfer.build(
            key, "refund", legs, consultation_id=consultation_id, memo=reason[:500]
        )
        replay = await conn.fetchval(
            "SELECT 1 FROM ledger_transfers WHERE idempotency_key = $1", key
        )
        if replay is None and amount_paise > paid - c["refunded_paise"]:
            raise InvalidAmount(
                "refund exceeds what the caller paid",
                refundable_paise=paid - c["refunded_paise"],
            )
        posted = await ledger.post(conn, transfer, allow_into_holds=True)
        if not posted.replayed:
            await conn.execute(
                "UPDATE consultations SET refunded_paise = refunded_paise + $2 WHERE id = $1",
                consultation_id,
                amount_paise,
            )
            await audit_log.record(
                conn,
                actor_id,
                "consultation_refund",
                "consultation",
                str(consultation_id),
                {
                    "amount_paise": amount_paise,
                    "reason": reason,
                    "transfer_id": str(posted.transfer_id),
                    "consultant_part_paise": consultant_part,
                    "platform_part_paise": platform_part,
                },
            )
            await record_event(
                conn, consultation_id, "refunded", actor_id=actor_id,
                data={"amount_paise": amount_paise, "reason": reason,
                      "transfer_id": str(posted.transfer_id),
                      "consultant_part_paise": consultant_part,
                      "platform_part_paise": platform_part},
            )
            log.info(
                "consultation_refunded",
                consultation_id=str(consultation_id),
                amount_paise=amount_paise,
            )
    return Refund(
        consultation_id,
        amount_paise,
        consultant_part,
        platform_part,
        posted.transfer_id,
        posted.replayed,
    )
