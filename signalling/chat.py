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
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

_COLUMNS = (
    "id, consultation_id, seq, sender_id, client_id, kind, body, upload_id, masked, created_at"
)


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


_APPEND = f"""
WITH existing AS (
    SELECT {_COLUMNS} FROM chat_messages
    WHERE consultation_id = $1 AND sender_id = $2 AND client_id = $3
), bump AS (
    INSERT INTO chat_rooms AS r (consultation_id, last_seq)
    SELECT $1, 1 WHERE NOT EXISTS (SELECT 1 FROM existing)
    ON CONFLICT (consultation_id) DO UPDATE SET last_seq = r.last_seq + 1
    RETURNING last_seq
), inserted AS (
    INSERT INTO chat_messages
        (consultation_id, seq, sender_id, client_id, kind, body, upload_id, masked)
    SELECT $1, bump.last_seq, $2, $3, $4, $5, $6, $7 FROM bump
    ON CONFLICT (consultation_id, sender_id, client_id) DO NOTHING
    RETURNING {_COLUMNS}
)
SELECT *, true AS new FROM inserted
UNION ALL
SELECT *, false AS new FROM existing
"""


class ChatStore:
    """Chat rows in PostgreSQL.

    The hot path (``append``) can run on a few dedicated connections ("writers") instead of the
    shared pool: asyncpg resets a pooled connection on every release (``RESET ALL; UNLISTEN *;
    CLOSE ALL; pg_advisory_unlock_all()``), one extra round trip per message; the append is one
    autocommit statement that leaves no session state behind, so its writers need no reset.
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._dsn: str | None = None
        self._writers: asyncio.Queue[asyncpg.Connection] | None = None
        self._all: list[asyncpg.Connection] = []

    @classmethod
    async def open(cls, pool: asyncpg.Pool, dsn: str, writers: int = 2) -> ChatStore:
        store = cls(pool)
        store._dsn = dsn
        store._writers = asyncio.Queue()
        for _ in range(writers):
            con = await asyncpg.connect(dsn)
            store._all.append(con)
            store._writers.put_nowait(con)
        return store

    async def close(self) -> None:
        for con in self._all:
            with contextlib.suppress(Exception):
                await con.close()
        self._all.clear()

    async def _append_rows(self, *args: Any) -> list[asyncpg.Record]:
        if self._writers is None or self._dsn is None:
            async with self._pool.acquire() as con:
                return list(await con.fetch(_APPEND, *args))
        con = await self._writers.get()
        try:
            return list(await con.fetch(_APPEND, *args))
        finally:
            if con.is_closed():  # the server went away: replace the writer for the next caller
                self._all.remove(con)
                with contextlib.suppress(Exception):
                    con = await asyncpg.connect(self._dsn)
                    self._all.append(con)
            if not con.is_closed():
                self._writers.put_nowait(con)

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
        """Store a message; returns it and whether it is new (False: a resend of ``client_id``)."""
        kind = "text" if upload_id is None else "image"
        # One statement, one round trip, its own transaction: a resend finds its first copy and
        # bumps nothing; otherwise the room's counter row is locked, bumped, and the message
        # inserted with that seq, all committed together (seq order = commit order).
        rows = await self._append_rows(
            consultation_id, sender_id, client_id, kind, text, upload_id, masked
        )
        if rows:
            return _message(rows[0]), bool(rows[0]["new"])
        # Lost a race with a concurrent resend of the same client id: its copy won.
        async with self._pool.acquire() as con:
            found = await self._find(con, consultation_id, sender_id, client_id)
        if found is None:  # pragma: no cover - the conflicting row is committed
            raise RuntimeError("duplicate chat message vanished")
        return found, False

    @staticmethod
    async def _find(
        con: asyncpg.Connection, consultation_id: UUID, sender_id: UUID, client_id: str
    ) -> ChatMessage | None:
        row = await con.fetchrow(
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
        self, consultation_id: UUID, uploader_id: UUID, content_type: str, data: bytes
    ) -> Upload:
        digest = hashlib.sha256(data).hexdigest()
        upload_id = await self._pool.fetchval(
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

