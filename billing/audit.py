"""Read an invariants `Snapshot` from the database (one REPEATABLE READ transaction)."""

from __future__ import annotations

import asyncpg

from billing.invariants import (
    AccountRow,
    ChargeRow,
    ConsultationRow,
    EntryRow,
    HoldRow,
    OrderRow,
    Snapshot,
    TransferRow,
)
from billing.model import AccountKind


async def load_snapshot(pool: asyncpg.Pool) -> Snapshot:
    """Every ledger fact the invariants check, as of one consistent snapshot."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        accounts = await conn.fetch(
            "SELECT id, kind, balance_paise, owner_id FROM ledger_accounts"
        )
        transfers = await conn.fetch(
            "SELECT id, idempotency_key, kind, consultation_id FROM ledger_transfers"
        )
        entries = await conn.fetch(
            "SELECT transfer_id, account_id, amount_paise, consultation_id FROM ledger_entries"
        )
        holds = await conn.fetch(
            "SELECT id, account_id, amount_paise, state, posted_paise, transfer_id "
            "FROM ledger_holds"
        )
        charges = await conn.fetch(
            "SELECT consultation_id, minute, amount_paise, source, transfer_id, "
            "reversal_transfer_id, consultant_share_paise FROM consultation_charges"
        )
        consultations = await conn.fetch(
            "SELECT id, state, end_reason, rate_paise, minute_seconds, started_at, ended_at, "
            "minutes_charged, amount_charged_paise, promo_paise, caller_account_id, "
            "consultant_account_id, unserved FROM consultations"
        )
        orders = await conn.fetch(
            "SELECT gateway_order_id, amount_paise, status, transfer_id FROM payment_orders"
        )
    return Snapshot(
        accounts=tuple(AccountRow(r[0], AccountKind(r[1]), r[2], r[3]) for r in accounts),
        transfers=tuple(TransferRow(*r) for r in transfers),
        entries=tuple(EntryRow(*r) for r in entries),
        holds=tuple(HoldRow(*r) for r in holds),
        charges=tuple(ChargeRow(*r) for r in charges),
        consultations=tuple(ConsultationRow(*r) for r in consultations),
        orders=tuple(OrderRow(*r) for r in orders),
    )
