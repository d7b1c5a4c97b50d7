"""Shared fakes and builders for billing tests (real database; only time and events are fake)."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from billing import ledger
from billing.model import GATEWAY_CLEARING, AccountKind, Transfer
from core.db import Database

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@dataclass
class ManualClock:
    """A clock the test moves."""

    at: datetime = T0

    def now(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> datetime:
        self.at += timedelta(seconds=seconds)
        return self.at


@dataclass
class RecordingBus:
    """Records published events (the real LocalBus is covered by the core's tests)."""

    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    async def publish(self, topic: str, event: dict[str, Any]) -> None:
        # Events cross nodes as JSON (RedisBus): money must be plain ints, ids strings.
        self.events.append((topic, json.loads(json.dumps(event))))

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for _, e in self.events if e.get("event") == kind]


async def grant(database: Database, user_id: uuid.UUID, paise: int, key: str | None = None) -> None:
    """Credit a wallet from gateway clearing (a test stand-in for a captured recharge)."""
    async with database.pool.acquire() as conn, conn.transaction():
        wallet = await ledger.ensure_account(conn, AccountKind.WALLET, user_id)
        await ledger.post(
            conn,
            Transfer.build(
                key or f"grant:{uuid.uuid4()}",
                "grant",
                [(GATEWAY_CLEARING, -paise), (wallet, paise)],
            ),
        )


async def withdraw_available(database: Database, user_id: uuid.UUID) -> int:
    """Take back everything the wallet has beyond its open holds (the reverse of :func:`grant`,
    as a refund to the payment source would); returns the paise taken. A test empties a wallet
    this way at the moment it chooses, instead of funding a few minutes and racing the clock."""
    async with database.pool.acquire() as conn, conn.transaction():
        wallet = await ledger.ensure_account(conn, AccountKind.WALLET, user_id)
        available = (await ledger.lock_accounts(conn, [wallet]))[wallet].available
        if available <= 0:
            return 0
        await ledger.post(
            conn,
            Transfer.build(
                f"withdraw:{uuid.uuid4()}",
                "grant_reversal",
                [(wallet, -available), (GATEWAY_CLEARING, available)],
            ),
        )
    return available


async def balance(database: Database, kind: AccountKind, owner_id: uuid.UUID | None) -> int:
    if owner_id is None:
        value = await database.pool.fetchval(
            "SELECT balance_paise FROM ledger_accounts WHERE kind = $1 AND owner_id IS NULL",
            kind.value,
        )
    else:
        value = await database.pool.fetchval(
            "SELECT balance_paise FROM ledger_accounts WHERE kind = $1 AND owner_id = $2",
            kind.value,
            owner_id,
        )
    return int(value or 0)


async def terminate_backend_waiting_on(database: Database, holder: asyncpg.Connection) -> None:
    """Wait until a backend of this database blocks on a lock `holder` holds, then terminate it
    (pg_terminate_backend: what a failover or an operator does to a busy connection)."""
    for _ in range(1200):
        pid = await database.pool.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> $1 LIMIT 1",
            holder.get_server_pid(),
        )
        if pid is not None:
            assert await database.pool.fetchval("SELECT pg_terminate_backend($1)", pid)
            return
        await asyncio.sleep(0.05)
    raise AssertionError("no backend ever waited for the lock")


async def answered(database: Database, consultation_id: uuid.UUID, at: datetime) -> None:
    """The consultant's chat reply at `at`, as signalling stores it (a chat the consultant
    never answers in its first minute is refunded at its end)."""
    consultant = await database.pool.fetchval(
        "SELECT consultant_id FROM consultations WHERE id = $1", consultation_id
    )
    await database.pool.execute(
        "INSERT INTO chat_messages (consultation_id, seq, sender_id, client_id, kind, body, "
        "created_at) VALUES ($1, 1, $2, 'reply', 'text', 'Namaste', $3)",
        consultation_id,
        consultant,
        at,
    )


async def served(database: Database, consultation_id: uuid.UUID) -> None:
    """An accepted consultation that carried service from its start: the consultant's chat reply
    or the first media (what signalling reports); ends then charge as usual."""
    row = await database.pool.fetchrow(
        "SELECT mode, started_at FROM consultations WHERE id = $1", consultation_id
    )
    if row["mode"] == "chat":
        await answered(database, consultation_id, row["started_at"])
    else:
        await database.pool.execute(
            "UPDATE consultations SET media_started_at = started_at WHERE id = $1",
            consultation_id,
        )
