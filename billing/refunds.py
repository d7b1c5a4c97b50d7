"""Admin refunds of a consultation to the caller's wallet: a correcting transfer plus audit.

Refunds are allocated cumulatively per consultation (`consultant_part`): after every refund the
consultant has returned exactly floor(refunded x their wallet-paid share / paid) and the
platform the rest, so partial refunds never round in either side's favour and neither side
returns more than it received. The consultant's part comes from available earnings, any
shortfall from their receivable (billing.settlement): a refund never fails for lack of earnings.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg
import structlog

from billing import ledger
from billing.errors import IdempotencyConflict, InvalidAmount, InvalidTransition, NotFound
from billing.model import PLATFORM_REVENUE, Transfer
from billing.ports import HasPool
from billing.settlement import lock_parties
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


def consultant_part(
    paid: int, share: int, refunded_before: int, taken_before: int, amount: int
) -> int:
    """The consultant's part of refunding `amount` more of a consultation whose caller paid
    `paid` (consultant's share `share`), when `refunded_before` was refunded already and the
    consultant returned `taken_before` of it: their exact share of the new cumulative total,
    rounded down, less what they returned; never past their share."""
    if paid <= 0:
        return 0
    owed = min((refunded_before + amount) * share // paid, share)
    return max(0, min(owed - taken_before, amount))


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
        existing = await _replay(conn, key, c, amount_paise)
        if existing is not None:
            return existing
        paid = c["amount_charged_paise"]
        if amount_paise > paid - c["refunded_paise"]:
            raise InvalidAmount(
                "refund exceeds what the caller paid",
                refundable_paise=paid - c["refunded_paise"],
            )
        wallet_share = await conn.fetchval(
            "SELECT COALESCE(sum(consultant_share_paise), 0)::bigint FROM consultation_charges "
            "WHERE consultation_id = $1 AND source = 'wallet' AND reversal_transfer_id IS NULL",
            consultation_id,
        )
        side = await lock_parties(conn, c["caller_account_id"], c["consultant_account_id"])
        taken = await conn.fetchval(
            "SELECT COALESCE(-sum(e.amount_paise), 0)::bigint FROM ledger_transfers t "
            "JOIN ledger_entries e ON e.transfer_id = t.id WHERE t.consultation_id = $1 "
            "AND t.kind = 'refund' AND e.account_id = ANY($2::uuid[])",
            consultation_id,
            [side.earnings, side.receivable],
        )
        consultant = consultant_part(paid, wallet_share, c["refunded_paise"], taken, amount_paise)
        platform_part = amount_paise - consultant
        transfer = Transfer.build(
            key,
            "refund",
            [
                (c["caller_account_id"], amount_paise),
                (PLATFORM_REVENUE, -platform_part),
                *side.take(consultant),
            ],
            consultation_id=consultation_id,
            memo=reason[:500],
        )
        posted = await ledger.post(conn, transfer)
        await conn.execute(
            "UPDATE consultations SET refunded_paise = refunded_paise + $2 WHERE id = $1",
            consultation_id,
            amount_paise,
        )
        refund = Refund(
            consultation_id, amount_paise, consultant, platform_part, posted.transfer_id, False
        )
        await _record(conn, refund, reason, actor_id)
    log.info(
        "consultation_refunded", consultation_id=str(consultation_id), amount_paise=amount_paise
    )
    return refund


async def _record(
    conn: asyncpg.Connection, refund: Refund, reason: str, actor_id: uuid.UUID
) -> None:
    """The refund's audit row and its session-log `refunded` event, in its transaction."""
    details = {
        "amount_paise": refund.amount_paise,
        "reason": reason,
        "transfer_id": str(refund.transfer_id),
        "consultant_part_paise": refund.consultant_part_paise,
        "platform_part_paise": refund.platform_part_paise,
    }
    cid = refund.consultation_id
    await audit_log.record(conn, actor_id, "consultation_refund", "consultation", str(cid), details)
    await record_event(conn, cid, "refunded", actor_id=actor_id, data=details)


async def _replay(
    conn: asyncpg.Connection, key: str, c: asyncpg.Record, amount_paise: int
) -> Refund | None:
    """The refund already posted under `key` (the same amount), else None. Its parts are read
    back from its entries: the allocation depends on what was refunded before it."""
    transfer_id = await conn.fetchval(
        "SELECT id FROM ledger_transfers WHERE idempotency_key = $1", key
    )
    if transfer_id is None:
        return None
    legs = {
        r["account_id"]: r["amount_paise"]
        for r in await conn.fetch(
            "SELECT account_id, amount_paise FROM ledger_entries WHERE transfer_id = $1",
            transfer_id,
        )
    }
    if legs.get(c["caller_account_id"]) != amount_paise:
        raise IdempotencyConflict(
            "idempotency key reused with different content", idempotency_key=key
        )
    platform = -legs.get(PLATFORM_REVENUE, 0)
    return Refund(c["id"], amount_paise, amount_paise - platform, platform, transfer_id, True)
