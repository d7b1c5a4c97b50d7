"""PostgreSQL ledger operations on an asyncpg connection that is already inside a transaction.

Locking discipline (the rules that keep the ledger deadlock-free):
1. A transaction locks its entity rows first (consultation, order, payout), then the OWNED
   accounts it touches (wallets, earnings) in ONE statement,
   `SELECT ... WHERE id = ANY($1) ORDER BY id FOR UPDATE`, so all take them in one global order.
2. System accounts (platform revenue, gateway clearing, promotions, payouts clearing) are never
   locked up front: the entries trigger (0006) locks them in id order at the end of the statement
   that inserts the entries, and the transaction then only touches rows it already holds before
   committing. Hot system rows are therefore held for the shortest possible time, and two ticks
   can charge disjoint consultations in parallel, meeting only at that final update.
Balances change only by inserting entries (the trigger applies them), never by a direct UPDATE.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from billing.errors import (
    HoldResolved,
    IdempotencyConflict,
    InsufficientBalance,
    InsufficientEarnings,
    NotFound,
)
from billing.model import NEGATIVE_ALLOWED, SYSTEM_IDS, AccountKind, Transfer


@dataclass(frozen=True, slots=True)
class LockedAccount:
    id: uuid.UUID
    kind: AccountKind
    balance: int
    """Balance at lock time."""
    held: int
    """Sum of open holds."""

    @property
    def available(self) -> int:
        return self.balance - self.held


@dataclass(frozen=True, slots=True)
class Posted:
    """Result of posting a transfer."""

    transfer_id: uuid.UUID
    replayed: bool
    """True when the idempotency key already existed with the same content."""


async def ensure_account(
    conn: asyncpg.Connection, kind: AccountKind, owner_id: uuid.UUID
) -> uuid.UUID:
    """The owner's wallet/earnings account, created on first use."""
    row = await conn.fetchval(
        "SELECT id FROM ledger_accounts WHERE kind = $1 AND owner_id = $2", kind.value, owner_id
    )
    if row is not None:
        return row
    await conn.execute(
        "INSERT INTO ledger_accounts (kind, owner_id) VALUES ($1, $2) "
        "ON CONFLICT (kind, owner_id) WHERE owner_id IS NOT NULL DO NOTHING",
        kind.value,
        owner_id,
    )
    got = await conn.fetchval(
        "SELECT id FROM ledger_accounts WHERE kind = $1 AND owner_id = $2", kind.value, owner_id
    )
    return got


async def lock_accounts(
    conn: asyncpg.Connection, ids: Iterable[uuid.UUID], *, exclude_hold: uuid.UUID | None = None
) -> dict[uuid.UUID, LockedAccount]:
    """Lock the owned accounts in id order (system ones are only read); returns balances and
    open holds (minus `exclude_hold`)."""
    wanted = sorted(set(ids))
    owned = [a for a in wanted if a not in SYSTEM_IDS]
    rows = list(
        await conn.fetch(
            "SELECT id, kind, balance_paise FROM ledger_accounts WHERE id = ANY($1::uuid[]) "
            "ORDER BY id FOR UPDATE",
            owned,
        )
    )
    system = [a for a in wanted if a in SYSTEM_IDS]
    if system:  # read, not locked (rule 2); a racing debit is still stopped by the CHECK
        rows += await conn.fetch(
            "SELECT id, kind, balance_paise FROM ledger_accounts WHERE id = ANY($1::uuid[])",
            system,
        )
    if len(rows) != len(wanted):
        raise NotFound("ledger account not found")
    held = {
        r["account_id"]: r["held"]
        for r in await conn.fetch(
            "SELECT account_id, sum(amount_paise)::bigint AS held FROM ledger_holds "
            "WHERE account_id = ANY($1::uuid[]) AND state = 'open' "
            "AND id IS DISTINCT FROM $2 GROUP BY account_id",
            wanted,
            exclude_hold,
        )
    }
    return {
        r["id"]: LockedAccount(
            r["id"], AccountKind(r["kind"]), r["balance_paise"], held.get(r["id"], 0)
        )
        for r in rows
    }


async def post(
    conn: asyncpg.Connection,
    transfer: Transfer,
    *,
    exclude_hold: uuid.UUID | None = None,
    allow_into_holds: bool = False,
) -> Posted:
    """Post a balanced transfer exactly once under its idempotency key.

    Debits must fit the account's available balance (balance - open holds, not counting
    `exclude_hold`, the hold being posted); with `allow_into_holds` only the balance must cover
    them. A replay with the same content returns the first transfer; different content raises
    `IdempotencyConflict`.
    """
    accounts = await lock_accounts(conn, transfer.accounts, exclude_hold=exclude_hold)
    existing = await conn.fetchrow(
        "SELECT id, content_hash FROM ledger_transfers WHERE idempotency_key = $1", transfer.key
    )
    if existing is not None:
        return _replayed(existing, transfer)
    deltas: dict[uuid.UUID, int] = {}
    for e in transfer.entries:
        deltas[e.account_id] = deltas.get(e.account_id, 0) + e.amount.value
    for account_id, delta in deltas.items():
        acct = accounts[account_id]
        if delta >= 0 or acct.kind in NEGATIVE_ALLOWED:
            continue
        room = acct.balance if allow_into_holds else acct.available
        if room + delta < 0:
            error = (
                InsufficientEarnings if acct.kind is AccountKind.EARNINGS else InsufficientBalance
            )
            raise error(
                "insufficient funds",
                needed_paise=-delta,
                available_paise=max(room, 0),
            )
    transfer_id = await conn.fetchval(
        "INSERT INTO ledger_transfers (idempotency_key, kind, content_hash, consultation_id, memo) "
        "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
        transfer.key,
        transfer.kind,
        transfer.content_hash,
        transfer.consultation_id,
        transfer.memo,
    )
    if transfer_id is None:  # raced by a transfer on other accounts with the same key
        existing = await conn.fetchrow(
            "SELECT id, content_hash FROM ledger_transfers WHERE idempotency_key = $1", transfer.key
        )
        return _replayed(existing, transfer)
    await conn.execute(
        "INSERT INTO ledger_entries (transfer_id, account_id, amount_paise) "
        "SELECT $1, a, v FROM unnest($2::uuid[], $3::bigint[]) AS t(a, v)",
        transfer_id,
        [e.account_id for e in transfer.entries],
        [e.amount.value for e in transfer.entries],
    )
    return Posted(transfer_id, replayed=False)


def _replayed(existing: asyncpg.Record, transfer: Transfer) -> Posted:
    if existing["content_hash"] != transfer.content_hash:
        raise IdempotencyConflict(
            "idempotency key reused with different content", idempotency_key=transfer.key
        )
    return Posted(existing["id"], replayed=True)


async def place_hold(
    conn: asyncpg.Connection,
    account_id: uuid.UUID,
    amount: int,
    reference: str,
    expires_at: datetime,
) -> uuid.UUID:
    """Reserve `amount` of the account's available balance until `expires_at`."""
    acct = (await lock_accounts(conn, [account_id]))[account_id]
    if acct.available < amount:
        error = InsufficientEarnings if acct.kind is AccountKind.EARNINGS else InsufficientBalance
        raise error(
            "insufficient available balance",
            needed_paise=amount,
            available_paise=max(acct.available, 0),
        )
    return await conn.fetchval(
        "INSERT INTO ledger_holds (account_id, amount_paise, reference, expires_at) "
        "VALUES ($1, $2, $3, $4) RETURNING id",
        account_id,
        amount,
        reference,
        expires_at,
    )


async def void_hold(conn: asyncpg.Connection, hold_id: uuid.UUID, now: datetime) -> bool:
    """Void an open hold; False when it was already resolved (resolution happens once)."""
    done = await conn.fetchval(
        "UPDATE ledger_holds SET state = 'voided', resolved_at = $2 "
        "WHERE id = $1 AND state = 'open' RETURNING id",
        hold_id,
        now,
    )
    return done is not None


async def mark_hold_posted(
    conn: asyncpg.Connection,
    hold_id: uuid.UUID,
    posted: int,
    transfer_id: uuid.UUID,
    now: datetime,
) -> None:
    """Resolve an open hold as posted (in part or in full) by `transfer_id`."""
    done = await conn.fetchval(
        "UPDATE ledger_holds SET state = 'posted', posted_paise = $2, transfer_id = $3, "
        "resolved_at = $4 WHERE id = $1 AND state = 'open' RETURNING id",
        hold_id,
        posted,
        transfer_id,
        now,
    )
    if done is None:
        raise HoldResolved("hold already resolved", hold_id=str(hold_id))


async def post_hold(
    conn: asyncpg.Connection, hold_id: uuid.UUID, transfer: Transfer, now: datetime
) -> Posted:
    """Post a transfer against an open hold (the hold's reservation covers it) and resolve it."""
    hold = await conn.fetchrow(
        "SELECT account_id, amount_paise, state FROM ledger_holds WHERE id = $1 FOR UPDATE", hold_id
    )
    if hold is None:
        raise NotFound("hold not found")
    if hold["state"] != "open":
        raise HoldResolved("hold already resolved", hold_id=str(hold_id), state=hold["state"])
    debit = -sum(e.amount.value for e in transfer.entries if e.account_id == hold["account_id"])
    if not 0 < debit <= hold["amount_paise"]:
        raise HoldResolved("transfer does not fit the hold", hold_id=str(hold_id))
    posted = await post(conn, transfer, exclude_hold=hold_id)
    await mark_hold_posted(conn, hold_id, debit, posted.transfer_id, now)
    return posted


async def void_expired_holds(conn: asyncpg.Connection, now: datetime) -> list[uuid.UUID]:
    """Reconcile: void every open hold past its expiry. Returns the voided hold ids."""
    rows = await conn.fetch(
        "UPDATE ledger_holds SET state = 'voided', resolved_at = $1 "
        "WHERE state = 'open' AND expires_at <= $1 RETURNING id",
        now,
    )
    return [r["id"] for r in rows]
