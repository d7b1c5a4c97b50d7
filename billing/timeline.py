"""A consultation's session log as admins read it.

The log's events (core.session_log) plus one ``minute_charged`` per `consultation_charges`
row. Charged minutes are not copied into `consultation_events`: the charge row already is the
append-only record of the minute, written by the charge statement at the instant it charged, and
a second row per minute cost the billing tick measurably (docs/BENCHMARKS.md).

Order is by time; at the same instant (one transaction's clock reading) a charge follows the
`requested`/`accepted` that led to it and precedes everything else that transaction wrote (the
warnings, the end, a reversal), which is the order billing writes them in.
"""

from __future__ import annotations

import uuid

import asyncpg

from core.session_log import SessionEvent, read_events

_BEFORE_CHARGES = frozenset({"requested", "accepted"})


def _rank(event: SessionEvent) -> int:
    if event.kind == "minute_charged":
        return 1
    return 0 if event.kind in _BEFORE_CHARGES else 2


async def charge_events(pool: asyncpg.Pool, consultation_id: uuid.UUID) -> list[SessionEvent]:
    """One ``minute_charged`` per charged minute, in minute order."""
    rows = await pool.fetch(
        "SELECT minute, amount_paise, source, charged_at FROM consultation_charges"
        " WHERE consultation_id = $1 ORDER BY minute",
        consultation_id,
    )
    return [
        SessionEvent(
            consultation_id, "minute_charged", r["charged_at"],
            data={"minute": r["minute"], "amount_paise": r["amount_paise"], "source": r["source"]},
        )
        for r in rows
    ]


async def consultation_timeline(
    pool: asyncpg.Pool, consultation_id: uuid.UUID
) -> list[SessionEvent]:
    """Every event of the consultation, oldest first (see the module docstring for ties)."""
    events = await read_events(pool, consultation_id) + await charge_events(pool, consultation_id)
    # sorted() is stable: within a rank, each source keeps its own order (id, minute).
    return sorted(events, key=lambda e: (e.at, _rank(e)))
