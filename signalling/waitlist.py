"""FIFO waitlists for busy astrologers, in PostgreSQL so that every node sees one queue.

When an astrologer's consultation ends, :meth:`Waitlist.offer_next` offers the slot to the
caller at the head; it runs under a per-astrologer advisory lock, so when every node reacts to the
same ``consult_state`` event only one offer is made. An offer is held for ``offer_s`` seconds;
meanwhile requests from others are refused, then it expires and the next caller is offered.
A caller holds one open place at a time, across all astrologers (a unique index); who may queue
at all, and who is skipped when offered, is decided by :mod:`signalling.handlers.waitlist`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg


class AlreadyWaitlisted(Exception):
    """The caller already holds a place in another astrologer's queue."""

    def __init__(self, consultant_id: UUID) -> None:
        super().__init__(f"already waiting for {consultant_id}")
        self.consultant_id = consultant_id


@dataclass(frozen=True, slots=True)
class WaitlistEntry:
    id: UUID
    consultant_id: UUID
    caller_id: UUID
    mode: str
    state: str
    """``queued``, ``offered``, ``taken``, ``left``, ``expired`` or ``skipped``."""


def _entry(row: asyncpg.Record) -> WaitlistEntry:
    return WaitlistEntry(
        row["id"], row["consultant_id"], row["caller_id"], row["mode"], row["state"]
    )


_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('waitlist:' || $1::text, 0))"


class Waitlist:
    def __init__(self, pool: asyncpg.Pool, offer_s: float) -> None:
        self._pool = pool
        self._offer_s = offer_s

    async def _expire(self, con: asyncpg.Connection, consultant_id: UUID) -> None:
        await con.execute(
            """UPDATE consult_waitlist SET state = 'expired', closed_at = now()
               WHERE consultant_id = $1 AND state = 'offered'
                 AND offered_at < now() - make_interval(secs => $2)""",
            consultant_id, self._offer_s,
        )

    async def join(self, consultant_id: UUID, caller_id: UUID, mode: str) -> int:
        """Queue the caller (once); returns their 1-based position.

        :class:`AlreadyWaitlisted` when they hold a place with another astrologer."""
        async with self._pool.acquire() as con, con.transaction():
            await con.execute(_LOCK, str(consultant_id))
            elsewhere = await con.fetchval(
                """SELECT consultant_id FROM consult_waitlist
                   WHERE caller_id = $1 AND consultant_id <> $2
                     AND state IN ('queued', 'offered')""",
                caller_id, consultant_id,
            )
            if elsewhere is not None:
                raise AlreadyWaitlisted(elsewhere)
            try:
                await con.execute(
                    """INSERT INTO consult_waitlist (consultant_id, caller_id, mode)
                       VALUES ($1, $2, $3)
                       ON CONFLICT (consultant_id, caller_id)
                           WHERE state IN ('queued', 'offered') DO NOTHING""",
                    consultant_id, caller_id, mode,
                )
            except asyncpg.UniqueViolationError:
                # joined another astrologer's queue concurrently (the index is the final word)
                raise AlreadyWaitlisted(consultant_id) from None
            return await self._position(con, consultant_id, caller_id)

    @staticmethod
    async def _position(con: asyncpg.Connection, consultant_id: UUID, caller_id: UUID) -> int:
        value = await con.fetchval(
            """SELECT pos FROM (
                   SELECT caller_id, row_number() OVER (ORDER BY created_at, id) AS pos
                   FROM consult_waitlist
                   WHERE consultant_id = $1 AND state IN ('queued', 'offered')) q
               WHERE caller_id = $2""",
            consultant_id, caller_id,
        )
        return int(value or 0)

    async def leave(self, consultant_id: UUID, caller_id: UUID) -> bool:
        result = await self._pool.execute(
            """UPDATE consult_waitlist SET state = 'left', closed_at = now()
               WHERE consultant_id = $1 AND caller_id = $2 AND state IN ('queued', 'offered')""",
            consultant_id, caller_id,
        )
        return result != "UPDATE 0"

    async def blocked_for(self, consultant_id: UUID, caller_id: UUID) -> bool:
        """Whether a live offer to someone else holds this astrologer's freed slot."""
        async with self._pool.acquire() as con, con.transaction():
            await con.execute(_LOCK, str(consultant_id))
            await self._expire(con, consultant_id)
            return bool(
                await con.fetchval(
                    """SELECT EXISTS (SELECT 1 FROM consult_waitlist
                       WHERE consultant_id = $1 AND state = 'offered' AND caller_id <> $2)""",
                    consultant_id, caller_id,
                )
            )

    async def taken(self, consultant_id: UUID, caller_id: UUID) -> datetime | None:
        """The caller's request went through: their entry (if any) is done. Returns when the
        slot was offered to them, if it was (the session log's ``offered``)."""
        return await self._pool.fetchval(
            """UPDATE consult_waitlist SET state = 'taken', closed_at = now()
               WHERE consultant_id = $1 AND caller_id = $2 AND state IN ('queued', 'offered')
               RETURNING offered_at""",
            consultant_id, caller_id,
        )

    async def offer_next(self, consultant_id: UUID) -> WaitlistEntry | None:
        """Offer the freed slot to the head of the queue, unless an offer is already live."""
        async with self._pool.acquire() as con, con.transaction():
            await con.execute(_LOCK, str(consultant_id))
            await self._expire(con, consultant_id)
            live = await con.fetchval(
                """SELECT EXISTS (SELECT 1 FROM consult_waitlist
                   WHERE consultant_id = $1 AND state = 'offered')""",
                consultant_id,
            )
            if live:
                return None
            row = await con.fetchrow(
                """UPDATE consult_waitlist SET state = 'offered', offered_at = now()
                   WHERE id = (SELECT id FROM consult_waitlist
                               WHERE consultant_id = $1 AND state = 'queued'
                               ORDER BY created_at, id LIMIT 1)
                   RETURNING id, consultant_id, caller_id, mode, state""",
                consultant_id,
            )
            return _entry(row) if row is not None else None

    async def skip(self, entry: WaitlistEntry) -> None:
        """The offered caller can no longer start: their place is closed as ``skipped``."""
        await self._pool.execute(
            """UPDATE consult_waitlist SET state = 'skipped', closed_at = now()
               WHERE id = $1 AND state = 'offered'""",
            entry.id,
        )

    async def queued(self, consultant_id: UUID) -> list[WaitlistEntry]:
        rows = await self._pool.fetch(
            """SELECT id, consultant_id, caller_id, mode, state FROM consult_waitlist
               WHERE consultant_id = $1 AND state IN ('queued', 'offered')
               ORDER BY created_at, id""",
            consultant_id,
        )
        return [_entry(r) for r in rows]

    async def is_open(self, consultant_id: UUID, caller_id: UUID) -> bool:
        """Whether the caller is still queued or holding an offer."""
        return bool(
            await self._pool.fetchval(
                """SELECT EXISTS (SELECT 1 FROM consult_waitlist
                   WHERE consultant_id = $1 AND caller_id = $2
                     AND state IN ('queued', 'offered'))""",
                consultant_id, caller_id,
            )
        )
