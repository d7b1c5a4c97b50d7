"""Taking money back from a consultant, which never fails for lack of earnings.

Refunds and minute reversals return the consultant's share of what the caller paid. That share
comes out of the consultant's *available* earnings (balance - open holds: a requested or
approved payout's hold binds, and 0011 enforces it in the database). What their available
earnings cannot cover, the platform advances: the consultant's `receivable` account is debited
instead (it runs negative: what they owe), and `settle_receivable` pays it back from later
earnings before any of them can be paid out. So a refund or an end never fails for money
reasons, and no payout is ever left without the earnings it holds.

Lock order (billing/ledger.py rule 1): callers lock the consultation, then `lock_parties` takes
the wallet, earnings and receivable in one statement in id order.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from billing import ledger
from billing.lifecycle import Mode, Unserved
from billing.model import AccountKind, Transfer, charge_legs
from core.session_log import record_event

_REVERSAL_MEMO = {
    None: "minute began after the session ended",
    Unserved.NO_MEDIA: "refunded automatically: the call never connected",
    Unserved.UNANSWERED: "refunded automatically: the astrologer did not answer",
}


@dataclass(slots=True)
class ConsultantSide:
    """A consultant's earnings and receivable, locked, and what may still be taken."""

    earnings: uuid.UUID
    receivable: uuid.UUID
    available: int
    """Earnings not reserved by an open hold (never negative)."""

    def take(self, paise: int) -> list[tuple[uuid.UUID, int]]:
        """Legs taking `paise` back: from available earnings first, the rest on the receivable."""
        from_earnings = min(paise, self.available)
        self.available -= from_earnings
        return [(self.earnings, -from_earnings), (self.receivable, from_earnings - paise)]


async def lock_parties(
    conn: asyncpg.Connection, wallet: uuid.UUID, earnings: uuid.UUID
) -> ConsultantSide:
    """Lock a consultation's wallet, earnings and the consultant's receivable (created on first
    use) in one statement, in id order."""
    owner = await conn.fetchval("SELECT owner_id FROM ledger_accounts WHERE id = $1", earnings)
    receivable = await ledger.ensure_account(conn, AccountKind.RECEIVABLE, owner)
    accounts = await ledger.lock_accounts(conn, [wallet, earnings, receivable])
    return ConsultantSide(earnings, receivable, max(accounts[earnings].available, 0))


async def settle_receivable(conn: asyncpg.Connection, consultant_id: uuid.UUID) -> int:
    """Pay what the consultant owes from their available earnings (before a payout reserves
    them); returns the paise moved. Locks earnings and receivable in one statement."""
    earnings = await ledger.ensure_account(conn, AccountKind.EARNINGS, consultant_id)
    receivable = await conn.fetchval(
        "SELECT id FROM ledger_accounts WHERE kind = 'receivable' AND owner_id = $1",
        consultant_id,
    )
    if receivable is None:
        return 0
    accounts = await ledger.lock_accounts(conn, [earnings, receivable])
    paid = min(-accounts[receivable].balance, max(accounts[earnings].available, 0))
    if paid <= 0:
        return 0
    await ledger.post(
        conn,
        Transfer.build(
            f"receivable:{receivable}:{uuid.uuid4()}",
            "receivable_settlement",
            [(earnings, -paid), (receivable, paid)],
            memo="owed refunds paid back from earnings",
        ),
    )
    return paid


async def unserved_reason(conn: asyncpg.Connection, row: asyncpg.Record) -> Unserved | None:
    """Why an active consultation delivered nothing, if it did not: a voice or video call that
    never carried media, or a chat the consultant did not answer within its first minute."""
    if Mode(row["mode"]) is not Mode.CHAT:
        return Unserved.NO_MEDIA if row["media_started_at"] is None else None
    answered = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM chat_messages WHERE consultation_id = $1 "
        "AND sender_id = $2 AND created_at < $3::timestamptz + $4 * interval '1 second')",
        row["id"],
        row["consultant_id"],
        row["started_at"],
        row["minute_seconds"],
    )
    return None if answered else Unserved.UNANSWERED


async def reverse_minutes_after(
    conn: asyncpg.Connection,
    row: asyncpg.Record,
    owed: int,
    unserved: Unserved | None,
    now: datetime,
) -> int:
    """Reverse the charges of minutes > owed (they began after a back-dated end, or the
    consultation was not owed at all: `unserved`), each by a transfer that undoes its charge
    row: the payer refunded, the commission and the consultant's share taken back
    (`ConsultantSide.take`), and a `minute_reversed` session-log event in the same transaction.
    Returns the wallet paise returned."""
    charges = await conn.fetch(
        "SELECT minute, amount_paise, consultant_share_paise, source "
        "FROM consultation_charges WHERE consultation_id = $1 AND minute > $2 "
        "AND reversal_transfer_id IS NULL ORDER BY minute",
        row["id"],
        owed,
    )
    if not charges:
        return 0
    side = await lock_parties(conn, row["caller_account_id"], row["consultant_account_id"])
    returned = 0
    for ch in charges:
        undo = charge_legs(
            row["caller_account_id"],
            None,
            ch["amount_paise"],
            ch["consultant_share_paise"],
            ch["source"],
        )  # payer and platform legs; the consultant's share is taken back by `side`
        transfer = Transfer.build(
            f"reversal:{row['id']}:{ch['minute']}",
            "charge_reversal",
            [(a, -paise) for a, paise in undo] + side.take(ch["consultant_share_paise"]),
            consultation_id=row["id"],
            memo=_REVERSAL_MEMO[unserved],
        )
        posted = await ledger.post(conn, transfer)
        await conn.execute(
            "UPDATE consultation_charges SET reversal_transfer_id = $3 "
            "WHERE consultation_id = $1 AND minute = $2",
            row["id"],
            ch["minute"],
            posted.transfer_id,
        )
        await record_event(
            conn, row["id"], "minute_reversed", at=now,
            data={"minute": ch["minute"], "amount_paise": ch["amount_paise"],
                  "source": ch["source"],
                  "reason": unserved.value if unserved else "began after the end"},
        )
        wallet = ch["amount_paise"] if ch["source"] == "wallet" else 0
        returned += wallet
        await conn.execute(
            "UPDATE consultations SET minutes_charged = minutes_charged - 1, "
            "amount_charged_paise = amount_charged_paise - $2, "
            "promo_paise = promo_paise - $3, "
            "consultant_share_paise = consultant_share_paise - $4 WHERE id = $1",
            row["id"],
            wallet,
            ch["amount_paise"] - wallet,
            ch["consultant_share_paise"],
        )
    return returned


async def mark_unserved(
    conn: asyncpg.Connection, consultation_id: uuid.UUID, reason: Unserved, returned: int
) -> None:
    await conn.execute(
        "UPDATE consultations SET unserved = $2, auto_refunded_paise = $3 WHERE id = $1",
        consultation_id,
        reason.value,
        returned,
    )
