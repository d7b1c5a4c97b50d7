"""Shared fakes and builders for billing tests (real database; only time and events are fake)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

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
