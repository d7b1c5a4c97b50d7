"""Consultant payouts: request (a hold on earnings) -> admin approval -> `kundlinow payouts run`
settles each approved payout as the hold's pending transfer posted (bank reference recorded) or
voided (the bank refused it, or the hold expired).

The hold binds (0011: earnings never fall below their open holds; refunds take what they cannot
cover from the consultant's receivable, billing.settlement), so an approved payout always has
its money. A request first pays back what the consultant owes (`settle_receivable`). The run
settles each payout in its own transaction: an unexpected failure moves that one payout to
`failed` (reason recorded, hold released, audit-logged) and the run goes on.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import asyncpg
import structlog

from billing import ledger
from billing.config import BillingSettings
from billing.errors import InvalidAmount, InvalidTransition, NotFound, PayoutPending
from billing.model import PAYOUTS_CLEARING, AccountKind, Transfer
from billing.ports import Clock, HasPool
from billing.settlement import settle_receivable
from core import audit as audit_log

log = structlog.get_logger(__name__)


class PayoutFailed(Exception):
    """The bank refused the transfer (the payout is voided, earnings released)."""


class _SentNotPosted(Exception):
    """The bank took the payout but its ledger transfer could not be posted."""

    def __init__(self, reference: str, cause: Exception) -> None:
        super().__init__(reference)
        self.reference = reference
        self.cause = f"{type(cause).__name__}: {cause}"


def _sent_in(exc: BaseException | None) -> _SentNotPosted | None:
    """The `_SentNotPosted` behind `exc`, also when the rollback that followed it failed."""
    while exc is not None:
        if isinstance(exc, _SentNotPosted):
            return exc
        exc = exc.__context__
    return None


class PayoutRail(Protocol):
    """Sends money to the consultant's bank; idempotent on `payout_id` (sending a payout id
    again returns the first transfer's reference). Raises `PayoutFailed` when the bank refuses;
    any other exception means nothing was sent."""

    async def send(self, payout_id: uuid.UUID, consultant_id: uuid.UUID, amount_paise: int) -> str:
        """Returns the bank reference (UTR); raises PayoutFailed."""
        ...


class SimulatedBankRail:
    """Dev/test rail: succeeds with a stable reference per payout (fails if told to)."""

    def __init__(self, fail: frozenset[uuid.UUID] = frozenset()) -> None:
        self._fail = fail
        self._refs: dict[uuid.UUID, str] = {}

    async def send(self, payout_id: uuid.UUID, consultant_id: uuid.UUID, amount_paise: int) -> str:
        if payout_id in self._fail:
            raise PayoutFailed("account closed")
        return self._refs.setdefault(payout_id, f"SIMUTR{secrets.token_hex(6).upper()}")


@dataclass(frozen=True, slots=True)
class Payout:
    id: uuid.UUID
    consultant_id: uuid.UUID
    amount_paise: int
    state: str
    bank_reference: str | None
    failure_reason: str | None
    requested_at: datetime

    @classmethod
    def from_row(cls, r: asyncpg.Record) -> Payout:
        return cls(
            r["id"],
            r["consultant_id"],
            r["amount_paise"],
            r["state"],
            r["bank_reference"],
            r["failure_reason"],
            r["requested_at"],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "consultant_id": str(self.consultant_id),
            "amount_paise": self.amount_paise,
            "state": self.state,
            "bank_reference": self.bank_reference,
            "failure_reason": self.failure_reason,
            "requested_at": self.requested_at.isoformat(),
        }


class PayoutService:
    def __init__(self, db: HasPool, clock: Clock, settings: BillingSettings) -> None:
        self._db = db
        self._clock = clock
        self._settings = settings

    async def request(self, consultant_id: uuid.UUID, amount_paise: int) -> Payout:
        """Reserve earnings for a payout (minimum ₹1,000; one pending at a time)."""
        minimum = self._settings.payout_minimum_paise
        if amount_paise < minimum:
            raise InvalidAmount("payout is below the minimum", minimum_paise=minimum)
        now = self._clock.now()
        async with self._db.pool.acquire() as conn:
            async with conn.transaction():  # committed even when the request is refused
                await settle_receivable(conn, consultant_id)
            async with conn.transaction():
                earn = await ledger.ensure_account(conn, AccountKind.EARNINGS, consultant_id)
                await ledger.lock_accounts(conn, [earn])
                pending = await conn.fetchval(
                    "SELECT id FROM payouts WHERE consultant_id = $1 "
                    "AND state IN ('requested', 'approved')",
                    consultant_id,
                )
                if pending is not None:
                    raise PayoutPending("a payout is already pending", payout_id=str(pending))
                pid = uuid.uuid4()
                hold = await ledger.place_hold(
                    conn,
                    earn,
                    amount_paise,
                    f"payout:{pid}",
                    now + timedelta(days=self._settings.payout_hold_days),
                )
                row = await conn.fetchrow(
                    "INSERT INTO payouts (id, consultant_id, amount_paise, hold_id, requested_at) "
                    "VALUES ($1, $2, $3, $4, $5) RETURNING *",
                    pid,
                    consultant_id,
                    amount_paise,
                    hold,
                    now,
                )
        return Payout.from_row(row)

    async def list_payouts(
        self, consultant_id: uuid.UUID | None = None, state: str | None = None
    ) -> list[Payout]:
        rows = await self._db.pool.fetch(
            "SELECT * FROM payouts WHERE ($1::uuid IS NULL OR consultant_id = $1) "
            "AND ($2::text IS NULL OR state = $2) ORDER BY requested_at DESC LIMIT 200",
            consultant_id,
            state,
        )
        return [Payout.from_row(r) for r in rows]

    async def decide(self, payout_id: uuid.UUID, admin_id: uuid.UUID, approve: bool) -> Payout:
        now = self._clock.now()
        async with self._db.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow("SELECT * FROM payouts WHERE id = $1 FOR UPDATE", payout_id)
            if row is None:
                raise NotFound("payout not found")
            if row["state"] != "requested":
                raise InvalidTransition(row["state"], "approved" if approve else "rejected")
            if not approve:
                await ledger.void_hold(conn, row["hold_id"], now)
            row = await conn.fetchrow(
                "UPDATE payouts SET state = $2, decided_at = $3, decided_by = $4 "
                "WHERE id = $1 RETURNING *",
                payout_id,
                "approved" if approve else "rejected",
                now,
                admin_id,
            )
            await audit(
                conn, admin_id, "payout_approved" if approve else "payout_rejected", payout_id, {}
            )
        return Payout.from_row(row)

    async def run(self, rail: PayoutRail) -> list[Payout]:
        """Settle every approved payout, oldest approval first, each on its own: posted (bank
        reference), voided (refused, hold expired) or failed (any other error before the money
        left). One the bank took but the ledger could not post stays approved, hold kept, with
        its failure_reason set: the next run sends it again (the rail is idempotent on the
        payout id) and posts it."""
        settled: list[Payout] = []
        tried: list[uuid.UUID] = []
        while True:
            payout_id = await self._db.pool.fetchval(
                "SELECT id FROM payouts WHERE state = 'approved' AND NOT (id = ANY($1::uuid[])) "
                "ORDER BY decided_at, id LIMIT 1",
                tried,
            )
            if payout_id is None:
                return settled
            tried.append(payout_id)
            try:
                result = await self._settle(payout_id, rail)
            except Exception as exc:  # one payout's failure must not block the others
                sent = _sent_in(exc)
                if sent is not None:  # the money left: keep the hold, post on the next run
                    log.exception("payout_post_failed", payout_id=str(payout_id))
                    result = await self._unposted(payout_id, sent)
                else:
                    log.exception("payout_failed", payout_id=str(payout_id))
                    result = await self._fail(payout_id, f"{type(exc).__name__}: {exc}")
            if result is not None:
                settled.append(Payout.from_row(result))
                log.info("payout_settled", payout_id=str(payout_id), state=result["state"])

    async def _settle(self, payout_id: uuid.UUID, rail: PayoutRail) -> asyncpg.Record | None:
        async with self._db.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT * FROM payouts WHERE id = $1 AND state = 'approved' FOR UPDATE SKIP LOCKED",
                payout_id,
            )
            if row is None:  # another run has it
                return None
            now = self._clock.now()
            hold_state = await conn.fetchval(
                "SELECT state FROM ledger_holds WHERE id = $1", row["hold_id"]
            )
            if hold_state != "open":  # expired and voided by reconcile
                return await self._void(conn, row, "hold expired", now)
            try:
                reference = await rail.send(row["id"], row["consultant_id"], row["amount_paise"])
            except PayoutFailed as exc:
                return await self._void(conn, row, str(exc), now)
            try:
                return await self._post(conn, row, reference, now)
            except Exception as exc:  # rolled back: the payout stays approved, its hold open
                raise _SentNotPosted(reference, exc) from exc

    async def _unposted(self, payout_id: uuid.UUID, sent: _SentNotPosted) -> asyncpg.Record:
        reason = f"sent ({sent.reference}) but not posted: {sent.cause}"[:500]
        async with self._db.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "UPDATE payouts SET failure_reason = $2 WHERE id = $1 RETURNING *",
                payout_id,
                reason,
            )
            await audit(conn, None, "payout_post_failed", payout_id, {"reason": reason})
        return row

    async def _fail(self, payout_id: uuid.UUID, reason: str) -> asyncpg.Record | None:
        now = self._clock.now()
        async with self._db.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT * FROM payouts WHERE id = $1 AND state = 'approved' FOR UPDATE", payout_id
            )
            if row is None:
                return None
            await ledger.void_hold(conn, row["hold_id"], now)
            failed = await conn.fetchrow(
                "UPDATE payouts SET state = 'failed', failure_reason = $2, settled_at = $3 "
                "WHERE id = $1 RETURNING *",
                payout_id,
                reason[:500],
                now,
            )
            await audit(conn, None, "payout_failed", payout_id, {"reason": reason[:500]})
        return failed

    async def _post(
        self, conn: asyncpg.Connection, row: asyncpg.Record, reference: str, now: datetime
    ) -> asyncpg.Record:
        earn = await conn.fetchval(
            "SELECT account_id FROM ledger_holds WHERE id = $1", row["hold_id"]
        )
        transfer = Transfer.build(
            f"payout:{row['id']}",
            "payout",
            [(earn, -row["amount_paise"]), (PAYOUTS_CLEARING, row["amount_paise"])],
            memo=reference,
        )
        posted = await ledger.post_hold(conn, row["hold_id"], transfer, now)
        return await conn.fetchrow(
            "UPDATE payouts SET state = 'posted', transfer_id = $2, bank_reference = $3, "
            "settled_at = $4 WHERE id = $1 RETURNING *",
            row["id"],
            posted.transfer_id,
            reference,
            now,
        )

    async def _void(
        self, conn: asyncpg.Connection, row: asyncpg.Record, reason: str, now: datetime
    ) -> asyncpg.Record:
        await ledger.void_hold(conn, row["hold_id"], now)
        return await conn.fetchrow(
            "UPDATE payouts SET state = 'voided', failure_reason = $2, settled_at = $3 "
            "WHERE id = $1 RETURNING *",
            row["id"],
            reason,
            now,
        )


async def audit(
    conn: asyncpg.Connection,
    actor: uuid.UUID | None,
    action: str,
    subject: uuid.UUID,
    details: dict[str, Any],
) -> None:
    await audit_log.record(conn, actor, action, "payout", str(subject), details)
