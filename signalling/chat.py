"""Durable chat: messages are stored before they are fanned out.

Each consultation has its own sequence (``chat_rooms.last_seq``) advanced under the row lock in
the same statement as the insert, so sequence order is commit order: a reader that saw seq n
has seen every message before it, which makes "replay everything after ``since``" exact.
``(consultation, sender, client_id)`` is UNIQUE: a resent message is stored once. Sequence
numbers are gapless except when two copies of the same message race: the loser's number is
skipped (order, uniqueness and replay are unaffected).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import asyncpg

from signalling.upload_quota import UploadQuota, reserve

if TYPE_CHECKING:
    from signalling.metrics import ChatMetrics

WRITER_SETTINGS = {"plan_cache_mode": "force_generic_plan"}
"""The batch statement is prepared once per writer; PostgreSQL would otherwise keep planning it
afresh on every execution (its custom plans for small arrays look cheaper than the generic one),
which costs more than running it."""

_COLUMNS = (
    "id, consultation_id, seq, sender_id, client_id, kind, body, upload_id, masked, created_at"
)


class ConsultationClosed(Exception):
    """A new message for a consultation that is not (or no longer) active: not stored."""

    def __init__(self, consultation_id: UUID) -> None:
        super().__init__(f"consultation {consultation_id} is not active")
        self.consultation_id = consultation_id


@dataclass(frozen=True, slots=True)
class ChatMessage:
    id: UUID
    consultation_id: UUID
    seq: int
    """Position in the consultation, from 1, gapless."""
    sender_id: UUID
    client_id: str
    """The sender's idempotency key."""
    kind: str
    """``text`` or ``image``."""
    text: str | None
    upload_id: UUID | None
    masked: bool
    """Whether contact details were hidden."""
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "consultation_id": str(self.consultation_id),
            "seq": self.seq,
            "sender_id": str(self.sender_id),
            "client_id": self.client_id,
            "kind": self.kind,
            "text": self.text,
            "upload_id": str(self.upload_id) if self.upload_id else None,
            "masked": self.masked,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Upload:
    id: UUID
    consultation_id: UUID
    uploader_id: UUID
    content_type: str
    size_bytes: int
    sha256: str


def _message(row: asyncpg.Record) -> ChatMessage:
    return ChatMessage(
        id=row["id"],
        consultation_id=row["consultation_id"],
        seq=row["seq"],
        sender_id=row["sender_id"],
        client_id=row["client_id"],
        kind=row["kind"],
        text=row["body"],
        upload_id=row["upload_id"],
        masked=row["masked"],
        created_at=row["created_at"],
    )


_APPEND_BATCH = f"""
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::uuid[],
                         $7::bool[])
        WITH ORDINALITY AS t(consultation_id, sender_id, client_id, kind, body, upload_id, masked,
                             ord)
), existing AS (
    SELECT i.ord, {", ".join("m." + c for c in _COLUMNS.split(", "))}
    FROM input i JOIN chat_messages m USING (consultation_id, sender_id, client_id)
), fresh AS (
    SELECT i.*,
           row_number() OVER (PARTITION BY i.consultation_id ORDER BY i.ord) AS rank,
           count(*) OVER (PARTITION BY i.consultation_id) AS n
    FROM input i
    WHERE i.ord NOT IN (SELECT ord FROM existing)
      AND EXISTS (SELECT 1 FROM consultations c
                  WHERE c.id = i.consultation_id AND c.state = 'active')
), bump AS (
    INSERT INTO chat_rooms AS r (consultation_id, last_seq)
    SELECT consultation_id, count(*) FROM fresh GROUP BY consultation_id ORDER BY consultation_id
    ON CONFLICT (consultation_id) DO UPDATE SET last_seq = r.last_seq + EXCLUDED.last_seq
    RETURNING consultation_id, last_seq
), inserted AS (
    INSERT INTO chat_messages
        (consultation_id, seq, sender_id, client_id, kind, body, upload_id, masked)
    SELECT f.consultation_id, b.last_seq - f.n + f.rank, f.sender_id, f.client_id, f.kind,
           f.body, f.upload_id, f.masked
    FROM fresh f JOIN bump b USING (consultation_id)
    ORDER BY f.ord
    ON CONFLICT (consultation_id, sender_id, client_id) DO NOTHING
    RETURNING {_COLUMNS}
)
SELECT i.ord, n.*, true AS new
FROM inserted n JOIN input i USING (consultation_id, sender_id, client_id)
UNION ALL
SELECT *, false AS new FROM existing
"""
"""Stores a batch of messages in one statement (its own transaction): a resend finds its first
copy and bumps nothing; each room's counter row is locked once (rooms in id order, so two
batches never deadlock), bumped by its count of new messages, and those are inserted with
consecutive numbers in arrival order, all committed together (seq order = commit order). Rows
come back tagged with their 1-based position in the batch (``ord``). A new message of a
consultation that is not active (in the database, whatever a node's cached view says) is not
stored and comes back as no row."""

_Key = tuple[UUID, UUID, str]
"""(consultation, sender, client id): the idempotency key."""
_Row = tuple[UUID, UUID, str, str, str | None, UUID | None, bool]
"""The values of one message to store, in the order of the arrays of :data:`_APPEND_BATCH`."""
_Entry = tuple[_Row, list[asyncio.Future[tuple[ChatMessage, bool]]]]
"""A message to store and the futures of its callers (a copy sent twice has two)."""
_Batch = dict[_Key, _Entry]


class ChatStore:
    """Chat rows in PostgreSQL.

    Appends are group-committed: those that arrive within one event-loop tick go to PostgreSQL
    as one statement (one round trip, one commit) and each caller resumes once the batch is
    durable. While batches are in flight on every writer connection, new appends gather into the
    next one, so batches grow with load instead of queueing round trips.

    The hot path can run on a few dedicated connections ("writers") instead of the shared pool:
    asyncpg resets a pooled connection on every release (``RESET ALL; UNLISTEN *; CLOSE ALL;
    pg_advisory_unlock_all()``), one extra round trip per batch; the append is one autocommit
    statement that leaves no session state behind, so its writers need no reset.
    """

    def __init__(self, pool: asyncpg.Pool, metrics: ChatMetrics | None = None) -> None:
        self._pool = pool
        self._metrics = metrics
        self._dsn: str | None = None
        self._writers: asyncio.Queue[asyncpg.Connection] | None = None
        self._all: list[asyncpg.Connection] = []
        self._pending: _Batch = {}
        """Appends waiting for the next batch; copies of one key share its entry."""
        self._dispatcher: asyncio.Task[None] | None = None
        self._batches: set[asyncio.Task[None]] = set()

    @classmethod
    async def open(
        cls, pool: asyncpg.Pool, dsn: str, writers: int = 1, metrics: ChatMetrics | None = None
    ) -> ChatStore:
        store = cls(pool, metrics)
        store._dsn = dsn
        store._writers = asyncio.Queue()
        for _ in range(writers):
            con = await asyncpg.connect(dsn, server_settings=WRITER_SETTINGS)
            store._all.append(con)
            store._writers.put_nowait(con)
        return store

    async def close(self) -> None:
        """Let the batches in flight finish (their senders get their answers), fail the appends
        still waiting for a writer, then close the writers."""
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            await asyncio.gather(self._dispatcher, return_exceptions=True)
        waiting, self._pending = self._pending, {}
        for _, futures in waiting.values():
            for future in futures:
                if not future.done():
                    future.set_exception(ConnectionError("the chat store is closed"))
        await asyncio.gather(*self._batches, return_exceptions=True)
        for con in self._all:
            with contextlib.suppress(Exception):
                await con.close()
        self._all.clear()

    async def append(
        self,
        consultation_id: UUID,
        sender_id: UUID,
        client_id: str,
        *,
        text: str | None = None,
        upload_id: UUID | None = None,
        masked: bool = False,
    ) -> tuple[ChatMessage, bool]:
        """Store a message; returns it and whether it is new (False: a resend of ``client_id``).

        Returns once the message is committed (in the batch of this loop tick)."""
        kind = "text" if upload_id is None else "image"
        key = (consultation_id, sender_id, client_id)
        future: asyncio.Future[tuple[ChatMessage, bool]] = (
            asyncio.get_running_loop().create_future()
        )
        entry = self._pending.get(key)
        if entry is None:
            row = (consultation_id, sender_id, client_id, kind, text, upload_id, masked)
            self._pending[key] = (row, [future])
        else:
            entry[1].append(future)  # a copy sent again before the first was stored
        if self._dispatcher is None:
            self._dispatcher = asyncio.create_task(self._dispatch(), name="chat-batches")
        return await future

    async def _dispatch(self) -> None:
        """Hand what is pending to a free writer, batch after batch, until nothing is left.

        Started by the first append of a tick, it runs after that tick, so the batch holds
        every append of it; while no writer is free, appends keep gathering."""
        try:
            while self._pending:
                con = await self._writer()
                batch, self._pending = self._pending, {}
                task = asyncio.create_task(self._store_batch(con, batch), name="chat-batch")
                self._batches.add(task)
                task.add_done_callback(self._batches.discard)
        finally:
            self._dispatcher = None

    async def _writer(self) -> asyncpg.Connection | None:
        """A free writer connection (None: no writers, the batch goes through the pool)."""
        if self._writers is None:
            return None
        return await self._writers.get()

    async def _store_batch(self, con: asyncpg.Connection | None, batch: _Batch) -> None:
        entries = list(batch.values())
        started = time.perf_counter()
        try:
            if con is not None and con.is_closed():
                con = await self._reconnect(con)
            await self._settle(con, entries)
            if self._metrics is not None:
                self._metrics.observe(len(batch), time.perf_counter() - started)
        except Exception as exc:  # the server is still away: this batch fails, not the next
            _fail(entries, exc)
        finally:
            if con is not None and self._writers is not None:
                # Closed or not, the writer goes back: the batch that takes a closed one
                # reconnects it first. Dropping it instead would leave no writers after an
                # outage longer than a few batches, and chat would wait for one forever.
                self._writers.put_nowait(con)

    async def _reconnect(self, closed: asyncpg.Connection) -> asyncpg.Connection:
        """A new writer in place of one the server closed (restart, failover, idle kill)."""
        assert self._dsn is not None
        con = await asyncpg.connect(self._dsn, server_settings=WRITER_SETTINGS)
        self._all[self._all.index(closed)] = con
        return con

    async def _settle(self, con: asyncpg.Connection | None, entries: list[_Entry]) -> None:
        """Store the entries and resolve their callers' futures (with the error on failure)."""
        try:
            try:
                results = await self._append_rows(con, [row for row, _ in entries])
            except asyncpg.PostgresError:
                if len(entries) == 1:
                    raise
                # One bad row fails the statement: store the rows one by one so that only the
                # bad row's sender gets the error.
                for entry in entries:
                    await self._settle(con, [entry])
                return
            for (row, futures), result in zip(entries, results, strict=True):
                if result is None:
                    # Lost a race with a copy stored by another connection (its copy won), or
                    # the consultation is no longer active.
                    found = await self._find(*row[:3])
                    if found is None:
                        _fail([(row, futures)], ConsultationClosed(row[0]))
                        continue
                    result = (found, False)
                message, new = result
                for i, future in enumerate(futures):
                    if not future.done():
                        # copies of one key in a batch: the first is the new one
                        future.set_result((message, new and i == 0))
        except Exception as exc:
            _fail(entries, exc)
        except BaseException:
            for _, futures in entries:
                for future in futures:
                    future.cancel()
            raise

    async def _append_rows(
        self, con: asyncpg.Connection | None, rows: list[_Row]
    ) -> list[tuple[ChatMessage, bool] | None]:
        """Store ``rows`` in one statement; per row its message and whether it is new, or None
        when a concurrent copy from another connection was stored instead."""
        columns = [list(column) for column in zip(*rows, strict=True)]
        if con is None:
            async with self._pool.acquire() as pooled:
                records = await pooled.fetch(_APPEND_BATCH, *columns)
        else:
            records = await con.fetch(_APPEND_BATCH, *columns)
        results: list[tuple[ChatMessage, bool] | None] = [None] * len(rows)
        for record in records:
            results[record["ord"] - 1] = (_message(record), bool(record["new"]))
        return results

    async def _find(
        self, consultation_id: UUID, sender_id: UUID, client_id: str
    ) -> ChatMessage | None:
        row = await self._pool.fetchrow(
            f"""SELECT {_COLUMNS} FROM chat_messages
                WHERE consultation_id = $1 AND sender_id = $2 AND client_id = $3""",
            consultation_id, sender_id, client_id,
        )
        return _message(row) if row is not None else None

    async def since(self, consultation_id: UUID, after_seq: int, limit: int) -> list[ChatMessage]:
        """Messages with seq > ``after_seq``, oldest first."""
        rows = await self._pool.fetch(
            f"""SELECT {_COLUMNS} FROM chat_messages
                WHERE consultation_id = $1 AND seq > $2 ORDER BY seq LIMIT $3""",
            consultation_id, after_seq, limit,
        )
        return [_message(r) for r in rows]

    async def before(
        self, consultation_id: UUID, before_seq: int | None, limit: int
    ) -> list[ChatMessage]:
        """The ``limit`` messages before ``before_seq`` (newest page when None), oldest first."""
        rows = await self._pool.fetch(
            f"""SELECT {_COLUMNS} FROM chat_messages
                WHERE consultation_id = $1 AND ($2::bigint IS NULL OR seq < $2)
                ORDER BY seq DESC LIMIT $3""",
            consultation_id, before_seq, limit,
        )
        return [_message(r) for r in reversed(rows)]

    async def last_seq(self, consultation_id: UUID) -> int:
        value = await self._pool.fetchval(
            "SELECT last_seq FROM chat_rooms WHERE consultation_id = $1", consultation_id
        )
        return int(value or 0)

    async def mark_read(self, consultation_id: UUID, user_id: UUID, seq: int) -> int:
        """Advance the user's read marker (never backwards, never past the last message);
        returns the stored marker."""
        value = await self._pool.fetchval(
            """INSERT INTO chat_reads AS r (consultation_id, user_id, last_read_seq)
               VALUES ($1, $2, LEAST($3, COALESCE(
                   (SELECT last_seq FROM chat_rooms WHERE consultation_id = $1), 0)))
               ON CONFLICT (consultation_id, user_id) DO UPDATE
               SET last_read_seq = GREATEST(r.last_read_seq, EXCLUDED.last_read_seq),
                   updated_at = now()
               RETURNING last_read_seq""",
            consultation_id, user_id, seq,
        )
        return int(value)

    async def reads(self, consultation_id: UUID) -> dict[UUID, int]:
        rows = await self._pool.fetch(
            "SELECT user_id, last_read_seq FROM chat_reads WHERE consultation_id = $1",
            consultation_id,
        )
        return {r["user_id"]: r["last_read_seq"] for r in rows}

    async def add_upload(
        self, consultation_id: UUID, uploader_id: UUID, content_type: str, data: bytes,
        quota: UploadQuota | None = None,
    ) -> Upload:
        """Store an image; with ``quota``, :class:`UploadQuotaExceeded` when it does not fit."""
        digest = hashlib.sha256(data).hexdigest()
        async with self._pool.acquire() as conn, conn.transaction():
            if quota is not None:
                await reserve(conn, quota, consultation_id, uploader_id, len(data))
            upload_id = await conn.fetchval(
                """INSERT INTO chat_uploads
                       (consultation_id, uploader_id, content_type, size_bytes, sha256, data)
                   VALUES ($1, $2, $3, $4, $5, $6) RETURNING id""",
                consultation_id, uploader_id, content_type, len(data), digest, data,
            )
        return Upload(upload_id, consultation_id, uploader_id, content_type, len(data), digest)

    async def get_upload(self, upload_id: UUID) -> tuple[Upload, bytes] | None:
        row = await self._pool.fetchrow(
            """SELECT id, consultation_id, uploader_id, content_type, size_bytes, sha256, data
               FROM chat_uploads WHERE id = $1""",
            upload_id,
        )
        if row is None:
            return None
        meta = Upload(
            row["id"], row["consultation_id"], row["uploader_id"], row["content_type"],
            row["size_bytes"], row["sha256"],
        )
        return meta, bytes(row["data"])

    async def upload_meta(self, upload_id: UUID) -> Upload | None:
        row = await self._pool.fetchrow(
            """SELECT id, consultation_id, uploader_id, content_type, size_bytes, sha256
               FROM chat_uploads WHERE id = $1""",
            upload_id,
        )
        if row is None:
            return None
        return Upload(
            row["id"], row["consultation_id"], row["uploader_id"], row["content_type"],
            row["size_bytes"], row["sha256"],
        )



def _fail(entries: list[_Entry], exc: Exception) -> None:
    """Answer every caller of ``entries`` still waiting with ``exc``."""
    for _, futures in entries:
        for future in futures:
            if not future.done():
                future.set_exception(exc)
