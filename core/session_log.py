"""The session log: what happened in each consultation, in order (``consultation_events``).

Two ways in, both through :func:`record_event`:

* inside a transaction (pass the connection): billing records ``requested``, ``accepted``,
  ``ended``, ``refunded`` ... with the money they go with, so an event exists exactly when its
  money moved (the charge statement itself writes ``minute_charged``: billing/charging.py);
* through an :class:`EventLog` (the signalling hub, the SFU): :meth:`EventLog.append` only queues
  the event and returns; one task writes the queue in batches (one ``INSERT ... unnest``), so a
  socket or media callback never waits for PostgreSQL.

The table is append-only (migration 0017). ``kind`` is snake_case past tense.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeAlias

import asyncpg
import structlog

log = structlog.get_logger(__name__)

_KIND = re.compile(r"[a-z][a-z0-9_]{1,62}")

INSERT_SQL = (
    "INSERT INTO consultation_events (consultation_id, at, kind, actor_id, node_id, data)"
    " SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::uuid[], $5::text[],"
    " $6::jsonb[])"
)


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """One line of a consultation's timeline."""

    consultation_id: uuid.UUID
    kind: str
    """snake_case past tense: ``socket_connected``, ``ice_state_changed``, ``first_media``."""
    at: datetime
    """When it happened (aware UTC), not when it was written."""
    actor_id: uuid.UUID | None = None
    """The user it happened to or who did it; ``None`` for the system (tick, timeout)."""
    node_id: str | None = None
    """The node that saw it (signalling or SFU node id)."""
    data: Mapping[str, Any] = field(default_factory=dict)
    """Details, JSON-serialisable."""

    def __post_init__(self) -> None:
        if not _KIND.fullmatch(self.kind):
            raise ValueError(f"event kind must be snake_case: {self.kind!r}")


class HasPool(Protocol):
    """``kundlinow.db.Database`` or anything else holding an asyncpg pool."""

    @property
    def pool(self) -> asyncpg.Pool: ...


def _columns(events: Sequence[SessionEvent]) -> tuple[list[Any], ...]:
    return (
        [e.consultation_id for e in events],
        [e.at for e in events],
        [e.kind for e in events],
        [e.actor_id for e in events],
        [e.node_id for e in events],
        [json.dumps(dict(e.data), default=str) for e in events],
    )


async def write_events(
    executor: asyncpg.Connection | asyncpg.Pool, events: Sequence[SessionEvent]
) -> None:
    """Insert ``events`` with one statement (in the caller's transaction, given a connection)."""
    if events:
        await executor.execute(INSERT_SQL, *_columns(events))


class Emitter(Protocol):
    """What :meth:`EventLog.emitter` returns."""

    def __call__(
        self, consultation_id: str, actor_id: str | None, kind: str, data: dict[str, Any],
        *, at: datetime | None = None,
    ) -> None: ...


class EventLog:
    """A batched, never-blocking writer of session events (one per process).

    :meth:`append` queues; a background task writes the queue every ``flush_s`` seconds, or as
    soon as ``batch_max`` events wait. A failed write is retried with the next batch; the queue
    holds at most ``max_pending`` events (beyond that events are dropped and counted), so an
    unreachable database costs bounded memory, never latency.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        flush_s: float = 0.2,
        batch_max: int = 500,
        max_pending: int = 50_000,
    ) -> None:
        self._pool = pool
        self._flush_s = flush_s
        self._batch_max = batch_max
        self._pending: deque[SessionEvent] = deque(maxlen=max_pending)
        self._wake = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.dropped = 0
        """Events lost: the queue was full, or the database refused their batch."""

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="session-log-writer")

    def append(self, event: SessionEvent) -> None:
        """Queue ``event`` for the next batch; returns at once."""
        if len(self._pending) == self._pending.maxlen:
            self.dropped += 1
        self._pending.append(event)
        if len(self._pending) >= self._batch_max:
            self._wake.set()

    def emitter(self, node_id: str | None) -> Emitter:
        """A ``(consultation id, actor id, kind, data, at=now)`` sink with string ids, as the
        SFU names rooms and participants, stamped with ``node_id``."""

        def emit(
            consultation_id: str, actor_id: str | None, kind: str, data: dict[str, Any],
            *, at: datetime | None = None,
        ) -> None:
            try:
                event = SessionEvent(uuid.UUID(consultation_id), kind, at or datetime.now(UTC),
                                     uuid.UUID(actor_id) if actor_id else None, node_id, data)
            except ValueError:  # a room that is not a consultation: nothing to log it under
                log.debug("session_event_unlogged", room=consultation_id, kind=kind)
                return
            self.append(event)

        return emit

    async def flush(self) -> bool:
        """Write everything queued so far (readers call this to see this node's latest).

        False when the database could not be reached: the events stay queued for the next try.
        A batch the database refuses as data (SQLSTATE class 22/23), or that fails otherwise,
        is dropped and counted, so one bad event cannot block the queue forever."""
        async with self._write_lock:
            while self._pending:
                batch = [self._pending.popleft()
                         for _ in range(min(len(self._pending), self._batch_max))]
                try:
                    await write_events(self._pool, batch)
                except asyncpg.PostgresError as exc:
                    if (exc.sqlstate or "")[:2] not in ("22", "23"):
                        self._pending.extendleft(reversed(batch))
                        log.warning("session_log_write_failed", error=str(exc))
                        return False
                    self.dropped += len(batch)
                    log.error("session_log_batch_refused", error=str(exc), events=len(batch))
                except (OSError, asyncpg.InterfaceError, asyncpg.InternalClientError) as exc:
                    self._pending.extendleft(reversed(batch))
                    log.warning("session_log_write_failed", error=str(exc))
                    return False
                except Exception:  # a bug must not stop the writer for the whole process
                    self.dropped += len(batch)
                    log.exception("session_log_batch_lost", events=len(batch))
        return True

    async def _run(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._flush_s)
            self._wake.clear()
            await self.flush()

    async def close(self) -> None:
        """Stop the writer after its current batch (never cancelled mid-write: that would leave
        its pool connection mid-protocol) and write what is left (best effort)."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        if not await self.flush():
            log.error("session_log_lost_on_close", pending=len(self._pending))
        if self.dropped:
            log.warning("session_log_events_dropped", dropped=self.dropped)


EventTarget: TypeAlias = asyncpg.Connection | asyncpg.Pool | HasPool | EventLog
"""Where :func:`record_event` writes: a connection (its transaction), a pool, a ``Database``,
or the batched :class:`EventLog`."""


async def record_event(
    target: EventTarget,
    consultation_id: uuid.UUID,
    kind: str,
    *,
    actor_id: uuid.UUID | None = None,
    node_id: str | None = None,
    data: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    """Append one event to a consultation's session log (``at`` defaults to now).

    With an :class:`EventLog` this only queues; with a connection the row is part of the
    caller's transaction."""
    event = SessionEvent(
        consultation_id, kind, at or datetime.now(UTC), actor_id, node_id, dict(data or {})
    )
    if isinstance(target, EventLog):
        target.append(event)
        return
    pool = getattr(target, "pool", None)  # a Database; a pool or connection is used as is
    executor = pool if isinstance(pool, asyncpg.Pool) else target
    await write_events(executor, [event])


async def read_events(
    executor: asyncpg.Connection | asyncpg.Pool, consultation_id: uuid.UUID
) -> list[SessionEvent]:
    """A consultation's timeline, oldest first."""
    rows = await executor.fetch(
        "SELECT at, kind, actor_id, node_id, data FROM consultation_events"
        " WHERE consultation_id = $1 ORDER BY at, id",
        consultation_id,
    )
    return [
        SessionEvent(
            consultation_id, r["kind"], r["at"], r["actor_id"], r["node_id"], json.loads(r["data"])
        )
        for r in rows
    ]
