"""Synthetic live consultations in bulk, for the tick benchmark and the concurrency tests.

Everything is written set-based (one statement per table) and is ledger-consistent: wallets are
funded by one balanced grant transfer, consultations start active with no minute charged yet, so
the next tick charges every due minute.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from billing.model import GATEWAY_CLEARING, content_hash


@dataclass(frozen=True, slots=True)
class Seeded:
    consultation_ids: list[uuid.UUID]
    caller_ids: list[uuid.UUID]
    consultant_ids: list[uuid.UUID]


async def seed_live_consultations(
    conn: asyncpg.Connection,
    n: int,
    *,
    started_at: datetime,
    funds_paise: int,
    rate_paise: int = 1000,
    minute_seconds: int = 60,
    commission_percent: int = 30,
) -> Seeded:
    """`n` callers and `n` consultants, each pair in one active consultation."""
    tag = uuid.uuid4().hex[:8]
    async with conn.transaction():
        callers = [
            r["id"]
            for r in await conn.fetch(
                "INSERT INTO users (email, password_hash, display_name, role) "
                "SELECT 'lg-' || $1 || '-u' || i || '@example.test', 'x', 'caller ' || i, 'user' "
                "FROM generate_series(1, $2) AS i RETURNING id",
                tag,
                n,
            )
        ]
        consultants = [
            r["id"]
            for r in await conn.fetch(
                "INSERT INTO users (email, password_hash, display_name, role) "
                "SELECT 'lg-' || $1 || '-a' || i || '@example.test', 'x', 'astro ' || i, "
                "'consultant' FROM generate_series(1, $2) AS i RETURNING id",
                tag,
                n,
            )
        ]
        await conn.execute(
            "INSERT INTO consultant_profiles (user_id, display_name, rate_chat_paise) "
            "SELECT u, 'astro', $2 FROM unnest($1::uuid[]) AS u",
            consultants,
            rate_paise,
        )
        wallet_of = {
            r["owner_id"]: r["id"]
            for r in await conn.fetch(
                "INSERT INTO ledger_accounts (kind, owner_id) SELECT 'wallet', u "
                "FROM unnest($1::uuid[]) AS u RETURNING id, owner_id",
                callers,
            )
        }
        earn_of = {
            r["owner_id"]: r["id"]
            for r in await conn.fetch(
                "INSERT INTO ledger_accounts (kind, owner_id) SELECT 'earnings', u "
                "FROM unnest($1::uuid[]) AS u RETURNING id, owner_id",
                consultants,
            )
        }
        wallets = [wallet_of[c] for c in callers]
        if funds_paise:
            legs = [(GATEWAY_CLEARING, -funds_paise * n)] + [(w, funds_paise) for w in wallets]
            transfer_id = await conn.fetchval(
                "INSERT INTO ledger_transfers (idempotency_key, kind, content_hash) "
                "VALUES ($1, 'grant', $2) RETURNING id",
                f"grant:loadgen:{tag}",
                content_hash("grant", legs),
            )
            await conn.execute(
                "INSERT INTO ledger_entries (transfer_id, account_id, amount_paise) "
                "SELECT $1, a, v FROM unnest($2::uuid[], $3::bigint[]) AS t(a, v)",
                transfer_id,
                [a for a, _ in legs],
                [v for _, v in legs],
            )
        ids = [
            r["id"]
            for r in await conn.fetch(
                "INSERT INTO consultations (caller_id, consultant_id, mode, state, rate_paise, "
                "commission_percent, minute_seconds, caller_account_id, consultant_account_id, "
                "requested_at, started_at, next_charge_at) "
                "SELECT c, k, 'chat', 'active', $5, $6, $7, w, e, $8, $8, $8 "
                "FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[]) AS t(c, k, w, e) "
                "RETURNING id",
                callers,
                consultants,
                wallets,
                [earn_of[k] for k in consultants],
                rate_paise,
                commission_percent,
                minute_seconds,
                started_at,
            )
        ]
    return Seeded(ids, callers, consultants)
