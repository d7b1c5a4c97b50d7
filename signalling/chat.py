"""Durable chat: messages are stored before they are fanned out.

Each consultation has its own sequence (``chat_rooms.last_seq``) advanced under the row lock in
the same transaction as the insert, so sequence order is commit order: a reader that saw seq n
has seen every message before it, which makes "replay everything after ``since``" exact.
``(consultation, sender, client_id)`` is UNIQUE: a resent message is stored once.
"""

from __future__ import annotations

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


class _Duplicate(Exception):
    """Raised inside the transaction to roll back the sequence bump of a duplicate."""


class ChatStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

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
        async with self._pool.acquire() as con:
            existing = await self._find(con, consultation_id, sender_id, client_id)
            if existing is not None:
                return existing, False
            try:
                async with con.transaction():
                    row = await con.fetchrow(
                        f"""
                        WITH bump AS (
                            INSERT INTO chat_rooms AS r (consultation_id, last_seq)
                            VALUES ($1, 1)
                            ON CONFLICT (consultation_id)
                            DO UPDATE SET last_seq = r.last_seq + 1
                            RETURNING last_seq
                        )
                        INSERT INTO chat_messages
                            (consultation_id, seq, sender_id, client_id, kind, body, upload_id,
                             masked)
                        SELECT $1, bump.last_seq, $2, $3, $4, $5, $6, $7 FROM bump
                        ON CONFLICT (consultation_id, sender_id, client_id) DO NOTHING
                        RETURNING {_COLUMNS}
                        """,
                        consultation_id, sender_id, client_id, kind, text, upload_id, masked,
                    )
                    if row is None:
                        raise _Duplicate
            except _Duplicate:
                found = await self._find(con, consultation_id, sender_id, client_id)
                if found is None:  # pragma: no cover - the conflicting row is committed
                    raise RuntimeError("duplicate chat message vanished") from None
                return found, False
            return _message(row), True

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
        """Advance the user's read marker (never backwards); returns the stored marker."""
        value = await self._pool.fetchval(
            """INSERT INTO chat_reads AS r (consultation_id, user_id, last_read_seq)
               VALUES ($1, $2, $3)
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

