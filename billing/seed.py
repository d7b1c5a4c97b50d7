"""``kundlinow seed-demo``'s billing part: a welcome credit for each demo caller.

The credit is a promotions transfer with a per-user idempotency key, so seeding twice credits
once (the ledger returns the first transfer for a replayed key with the same content).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Protocol

from billing import ledger
from billing.model import PROMOTIONS, AccountKind, Transfer
from core.db import Database

WELCOME_CREDIT_PAISE = 50_000
"""₹500: enough for the minimum start of every demo astrologer's rates."""


class _Account(Protocol):
    role: str
    email: str


class _Seeded(Protocol):
    account: _Account
    user_id: str


async def seed_demo(database: Database, settings: object, seeded: Sequence[_Seeded]) -> list[str]:
    """Credit every demo caller's wallet once; returns the lines to print. ``settings`` is
    part of the hook signature (``api.seed``) and not needed here."""
    lines: list[str] = []
    for entry in seeded:
        if entry.account.role != "user":
            continue
        user_id = uuid.UUID(entry.user_id)
        async with database.pool.acquire() as conn, conn.transaction():
            wallet = await ledger.ensure_account(conn, AccountKind.WALLET, user_id)
            await ledger.post(
                conn,
                Transfer.build(
                    f"seed:welcome:{user_id}",
                    "promotion",
                    [(PROMOTIONS, -WELCOME_CREDIT_PAISE), (wallet, WELCOME_CREDIT_PAISE)],
                    memo="demo welcome credit",
                ),
            )
        lines.append(f"{entry.account.email}: ₹{WELCOME_CREDIT_PAISE // 100} welcome credit")
    return lines
