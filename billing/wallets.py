"""Read side of the ledger: wallet and earnings summaries, paginated transactions."""

from __future__ import annotations

import uuid
from typing import Any

from billing.model import AccountKind
from billing.ports import HasPool


class WalletReader:
    """Balances, holds and entries of a user's wallet or earnings account."""

    def __init__(self, db: HasPool) -> None:
        self._db = db

    async def summary(
        self, owner_id: uuid.UUID, kind: AccountKind = AccountKind.WALLET
    ) -> dict[str, Any]:
        pool = self._db.pool
        row = await pool.fetchrow(
            "SELECT id, balance_paise FROM ledger_accounts WHERE kind = $1 AND owner_id = $2",
            kind.value,
            owner_id,
        )
        if row is None:
            return {"balance_paise": 0, "available_paise": 0, "held_paise": 0, "holds": []}
        holds = await pool.fetch(
            "SELECT id, amount_paise, reference, expires_at, created_at FROM ledger_holds "
            "WHERE account_id = $1 AND state = 'open' ORDER BY created_at",
            row["id"],
        )
        held = sum(h["amount_paise"] for h in holds)
        owed = 0
        if kind is AccountKind.EARNINGS:  # paid back before any payout (billing.settlement)
            owed = -int(
                await pool.fetchval(
                    "SELECT COALESCE(sum(balance_paise), 0) FROM ledger_accounts "
                    "WHERE kind = 'receivable' AND owner_id = $1",
                    owner_id,
                )
            )
        return {
            "balance_paise": row["balance_paise"],
            "available_paise": max(row["balance_paise"] - held - owed, 0),
            "held_paise": held,
            **({"owed_paise": owed} if kind is AccountKind.EARNINGS else {}),
            "holds": [
                {
                    "id": str(h["id"]),
                    "amount_paise": h["amount_paise"],
                    "reference": h["reference"],
                    "expires_at": h["expires_at"].isoformat(),
                }
                for h in holds
            ],
        }

    async def transactions(
        self,
        owner_id: uuid.UUID,
        kind: AccountKind = AccountKind.WALLET,
        *,
        limit: int = 20,
        before: int | None = None,
    ) -> dict[str, Any]:
        """Newest first; `next_before` is the cursor of the next page (None at the end)."""
        rows = await self._db.pool.fetch(
            "SELECT e.id, e.amount_paise, e.created_at, t.kind, t.idempotency_key, t.memo, "
            # a charge transfer covers many consultations; each of its entries names its own
            "COALESCE(e.consultation_id, t.consultation_id) AS consultation_id "
            "FROM ledger_entries e "
            "JOIN ledger_accounts a ON a.id = e.account_id "
            "JOIN ledger_transfers t ON t.id = e.transfer_id "
            "WHERE a.kind = $1 AND a.owner_id = $2 AND ($3::bigint IS NULL OR e.id < $3) "
            "ORDER BY e.id DESC LIMIT $4",
            kind.value,
            owner_id,
            before,
            limit + 1,
        )
        page = rows[:limit]
        return {
            "items": [
                {
                    "id": r["id"],
                    "amount_paise": r["amount_paise"],
                    "kind": r["kind"],
                    "reference": r["idempotency_key"],
                    "memo": r["memo"],
                    "consultation_id": str(r["consultation_id"]) if r["consultation_id"] else None,
                    "created_at": r["created_at"].isoformat(),
                }
                for r in page
            ],
            "next_before": page[-1]["id"] if len(rows) > limit else None,
        }
