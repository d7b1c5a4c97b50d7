"""The set-based charge statement shared by the tick, accept and end.

One SQL statement charges every due minute of a batch of (already locked) active consultations:
it computes, per consultation, the minutes from `minutes_charged + 1` up to the requested `due`
minute that the wallet can pay (minutes within `free_minutes` are paid by promotions), inserts
one `consultation_charges` row per minute under the UNIQUE (consultation_id, minute) key with
`ON CONFLICT DO NOTHING` (the key that makes charging idempotent), advances the consultation, and
ends the ones that could not pay a due minute with `insufficient_balance` at the boundary of the
first unpaid minute (so no debt is ever created).

The money of all minutes the statement charged moves in ONE balanced transfer (key
`charges:<transfer id>`, the id every charge row points to): per consultation one debit of its
wallet and one credit of its consultant's earnings (each entry names the consultation, so wallet
history and earnings stay per consultation), one promotions debit for the free minutes and one
platform revenue credit; the 0002/0006 trigger applies the entries to the balances. Per-minute
detail (amount, consultant share, source) lives in the charge rows, and billing.invariants
proves the transfer's entries are exactly the sum of its charge rows. The same statement
appends the session log's `balance_warning` and `ended` events (core.session_log); its
charge rows are the log's `minute_charged` events (billing.timeline).

Callers must hold the consultation rows and all involved accounts locked (consultations first,
then accounts in id order; see billing/ledger.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from billing.model import PLATFORM_REVENUE, PROMOTIONS

CHARGE_SQL = """
WITH want AS (
    SELECT t.id, t.due FROM unnest($1::uuid[], $2::int[]) AS t(id, due)
),
c AS (
    SELECT k.id, k.caller_account_id AS wallet, k.consultant_account_id AS earn,
           k.rate_paise AS rate,
           k.rate_paise - k.rate_paise * k.commission_percent / 100 AS share,
           k.free_minutes, k.minutes_charged AS charged, w.due, k.hold_id
      FROM consultations k JOIN want w ON w.id = k.id
     WHERE k.state = 'active'
),
avail AS (
    SELECT c.id, a.balance_paise AS balance,
           a.balance_paise - COALESCE((SELECT sum(h.amount_paise) FROM ledger_holds h
                                        WHERE h.account_id = c.wallet AND h.state = 'open'
                                          AND h.id IS DISTINCT FROM c.hold_id), 0)::bigint
               AS avail
      FROM c JOIN ledger_accounts a ON a.id = c.wallet
),
mins AS (
    -- The minutes to charge come expanded from Python (see `expand`), so the planner knows
    -- how many rows there are; widx is the minute's index among wallet-paid minutes (0 = paid
    -- by promotions). The wallet pays minute m only while widx * rate fits its available
    -- balance, which is monotone in widx: the paid minutes are always a prefix.
    SELECT c.id, m.minute, c.rate, c.share, m.widx = 0 AS promo
      FROM unnest($6::uuid[], $7::int[], $8::int[]) AS m(id, minute, widx)
      JOIN c ON c.id = m.id
      JOIN avail v ON v.id = c.id
     WHERE m.minute > c.charged AND m.minute <= c.due
       AND (m.widx = 0 OR m.widx::bigint * c.rate <= v.avail)
),
ins AS (
    INSERT INTO consultation_charges AS cc
           (consultation_id, minute, amount_paise, consultant_share_paise, source,
            transfer_id, charged_at)
    SELECT id, minute, rate, share, CASE WHEN promo THEN 'promotion' ELSE 'wallet' END, $9, $3
      FROM mins
    ON CONFLICT (consultation_id, minute) DO NOTHING
    RETURNING cc.consultation_id, cc.amount_paise, cc.consultant_share_paise, cc.source
),
agg AS (
    SELECT consultation_id, count(*)::int AS n,
           COALESCE(sum(amount_paise) FILTER (WHERE source = 'wallet'), 0)::bigint AS wallet_paise,
           COALESCE(sum(amount_paise) FILTER (WHERE source = 'promotion'), 0)::bigint
               AS promo_paise,
           sum(consultant_share_paise)::bigint AS share_paise
      FROM ins GROUP BY consultation_id
),
legs AS (
    -- The statement's one transfer: each consultation's wallet debit and its consultant's
    -- credit (naming the consultation), one promotions debit and one platform revenue credit.
    SELECT c.wallet AS account_id, c.id AS consultation_id, -a.wallet_paise AS amount
      FROM agg a JOIN c ON c.id = a.consultation_id
     WHERE a.wallet_paise > 0
    UNION ALL
    SELECT c.earn, c.id, a.share_paise
      FROM agg a JOIN c ON c.id = a.consultation_id
     WHERE a.share_paise > 0
    UNION ALL
    SELECT $5::uuid, NULL, -sum(promo_paise)::bigint FROM agg HAVING sum(promo_paise) > 0
    UNION ALL
    SELECT $4::uuid, NULL, sum(wallet_paise + promo_paise - share_paise)::bigint
      FROM agg HAVING sum(wallet_paise + promo_paise - share_paise) > 0
),
tr AS (
    INSERT INTO ledger_transfers (id, idempotency_key, kind, content_hash, consultation_id,
                                  created_at)
    SELECT $9, 'charges:' || $9::text, 'charge',
           encode(sha256(convert_to('charge|' || string_agg(
               account_id::text || ':' || amount::text, ';'
               ORDER BY account_id::text COLLATE "C", amount), 'UTF8')), 'hex'),
           $10, $3
      FROM legs HAVING count(*) > 0
),
ent AS (
    INSERT INTO ledger_entries (transfer_id, account_id, amount_paise, consultation_id,
                                created_at)
    SELECT $9, account_id, amount, consultation_id, $3 FROM legs
),
upd AS (
    UPDATE consultations k SET
        minutes_charged = k.minutes_charged + COALESCE(a.n, 0),
        amount_charged_paise = k.amount_charged_paise + COALESCE(a.wallet_paise, 0),
        promo_paise = k.promo_paise + COALESCE(a.promo_paise, 0),
        consultant_share_paise = k.consultant_share_paise + COALESCE(a.share_paise, 0),
        next_charge_at = CASE WHEN c.due > c.charged + COALESCE(a.n, 0) THEN NULL
            ELSE k.started_at + ((c.charged + COALESCE(a.n, 0)) * k.minute_seconds)
                 * interval '1 second' END,
        state = CASE WHEN c.due > c.charged + COALESCE(a.n, 0) THEN 'ended' ELSE k.state END,
        end_reason = CASE WHEN c.due > c.charged + COALESCE(a.n, 0)
            THEN 'insufficient_balance' ELSE k.end_reason END,
        ended_at = CASE WHEN c.due > c.charged + COALESCE(a.n, 0)
            THEN k.started_at + ((c.charged + COALESCE(a.n, 0)) * k.minute_seconds)
                 * interval '1 second'
            ELSE k.ended_at END
      FROM c LEFT JOIN agg a ON a.consultation_id = c.id
     WHERE k.id = c.id
    RETURNING k.id, k.caller_id, k.consultant_id, k.state, k.ended_at, k.minutes_charged,
              k.amount_charged_paise, k.rate_paise, k.hold_id,
              COALESCE(a.n, 0) AS charged_now, COALESCE(a.wallet_paise, 0) AS wallet_now
),
ev AS (
    -- The session log (core/session_log.py) in the same statement: a balance_warning when
    -- two or fewer minutes are left (the bus event's rule, ConsultationService._publish_charges)
    -- and ended when a due minute could not be paid. The charge rows themselves are the log's
    -- minute_charged events (billing/timeline.py), so the tick does not write each minute twice.
    INSERT INTO consultation_events (consultation_id, at, kind, data)
    SELECT u.id, $3, 'balance_warning',
           jsonb_build_object('minutes_left', GREATEST(v.avail - u.wallet_now, 0) / u.rate_paise,
                              'balance_paise', v.balance - u.wallet_now)
      FROM upd u JOIN avail v ON v.id = u.id
     WHERE u.state = 'active' AND u.charged_now > 0
       AND GREATEST(v.avail - u.wallet_now, 0) / u.rate_paise <= 2
    UNION ALL
    SELECT u.id, $3, 'ended',
           jsonb_build_object('reason', 'insufficient_balance', 'ended_at', u.ended_at)
      FROM upd u WHERE u.state = 'ended'
)
SELECT u.id, u.caller_id, u.consultant_id, u.state, u.minutes_charged, u.amount_charged_paise,
       u.rate_paise, u.hold_id, u.charged_now, u.wallet_now,
       v.balance - u.wallet_now AS balance_after, v.avail - u.wallet_now AS available_after
  FROM upd u JOIN avail v ON v.id = u.id
"""


@dataclass(frozen=True, slots=True)
class Due:
    """A locked active consultation and the minute it must have paid up to."""

    id: uuid.UUID
    charged: int
    """minutes_charged as read under the row lock."""
    free_minutes: int
    due: int


def expand(dues: Sequence[Due]) -> tuple[list[uuid.UUID], list[int], list[int]]:
    """(consultation, minute, wallet index) for every minute from charged+1 to due."""
    ids: list[uuid.UUID] = []
    minutes: list[int] = []
    widx: list[int] = []
    for d in dues:
        first_wallet = max(d.free_minutes, d.charged)
        for m in range(d.charged + 1, d.due + 1):
            ids.append(d.id)
            minutes.append(m)
            widx.append(0 if m <= d.free_minutes else m - first_wallet)
    return ids, minutes, widx


@dataclass(frozen=True, slots=True)
class ChargeResult:
    """What the charge statement did to one consultation."""

    consultation_id: uuid.UUID
    caller_id: uuid.UUID
    consultant_id: uuid.UUID
    ended: bool
    """True when it could not pay a due minute and was ended (insufficient_balance)."""
    minutes_charged: int
    """Total minutes charged so far."""
    amount_charged_paise: int
    """Total paid from the wallet so far."""
    charged_now: int
    """Minutes charged by this statement."""
    wallet_now_paise: int
    """Paid from the wallet by this statement."""
    balance_after_paise: int
    available_after_paise: int
    rate_paise: int
    hold_id: uuid.UUID | None

    @property
    def minutes_left(self) -> int:
        """Further minutes the available balance pays for."""
        return max(self.available_after_paise, 0) // self.rate_paise


async def charge(
    conn: asyncpg.Connection, dues: Sequence[Due], now: datetime
) -> list[ChargeResult]:
    """Charge every minute up to `due` of each (locked, active) consultation in one statement."""
    if not dues:
        return []
    # The planner cannot estimate rows through the chain of data-modifying CTEs (it guesses
    # ~1,000x too many), so (1) the statement's cost passes every JIT threshold and PostgreSQL
    # spent more CPU compiling it (inlining + optimisation) than running it: half the tick's
    # backend CPU at 10,000 charges; (2) from the sixth execution on one connection, the plan
    # cache may switch to a generic plan built without the array sizes, with nested loops that
    # made a 10,000-charge tick take 30+ CPU-seconds. Each execution is planned for its batch.
    await conn.execute("SET LOCAL jit = off; SET LOCAL plan_cache_mode = force_custom_plan")
    rows = await conn.fetch(
        CHARGE_SQL,
        [d.id for d in dues],
        [d.due for d in dues],
        now,
        PLATFORM_REVENUE,
        PROMOTIONS,
        *expand(dues),
        uuid.uuid4(),
        dues[0].id if len(dues) == 1 else None,
    )
    return [
        ChargeResult(
            consultation_id=r["id"],
            caller_id=r["caller_id"],
            consultant_id=r["consultant_id"],
            ended=r["state"] == "ended",
            minutes_charged=r["minutes_charged"],
            amount_charged_paise=r["amount_charged_paise"],
            charged_now=r["charged_now"],
            wallet_now_paise=r["wallet_now"],
            balance_after_paise=r["balance_after"],
            available_after_paise=r["available_after"],
            rate_paise=r["rate_paise"],
            hold_id=r["hold_id"],
        )
        for r in rows
    ]
