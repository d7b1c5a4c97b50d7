"""The ``recordings`` table (migration 0013): one row per stored file."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from recording.writer import FileResult

COLUMNS = (
    "id, consultation_id, party, kind, codec, segment, storage_key, status, started_at,"
    " ended_at, offset_ms, duration_ms, bytes, sha256, created_at"
)


@dataclass(frozen=True, slots=True)
class ConsultInfo:
    """What the recorder needs to know about a consultation."""

    consultation_id: uuid.UUID
    mode: str
    """``chat``, ``voice`` or ``video``."""
    parties: dict[str, str]
    """Participant (user) id → ``caller`` or ``astrologer``."""
    started_at: float | None
    """Unix time the consultation became active: zero of the consultation clock."""


@dataclass(frozen=True, slots=True)
class NewFile:
    """A file the live recorder has started."""

    id: uuid.UUID
    consultation_id: uuid.UUID
    party: str
    kind: str
    codec: str
    segment: int
    storage_key: str
    started_at: dt.datetime
    offset_ms: int


class Catalog:
    """Rows of ``recordings`` (and the consultation facts the recorder reads)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def consultation(self, consultation_id: str) -> ConsultInfo | None:
        try:
            cid = uuid.UUID(consultation_id)
        except ValueError:
            return None
        row = await self.pool.fetchrow(
            "SELECT caller_id, consultant_id, mode, started_at FROM consultations WHERE id = $1",
            cid,
        )
        if row is None:
            return None
        started = row["started_at"]
        return ConsultInfo(
            cid,
            row["mode"],
            {str(row["caller_id"]): "caller", str(row["consultant_id"]): "astrologer"},
            started.timestamp() if started is not None else None,
        )

    async def file_opened(self, f: NewFile) -> None:
        await self.pool.execute(
            "INSERT INTO recordings (id, consultation_id, party, kind, codec, segment,"
            " storage_key, started_at, offset_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            " ON CONFLICT (storage_key) DO NOTHING",
            f.id, f.consultation_id, f.party, f.kind, f.codec, f.segment, f.storage_key,
            f.started_at, f.offset_ms,
        )

    async def file_finished(self, result: FileResult) -> None:
        """Record a finalised file; an empty one loses its row."""
        if result.status == "empty":
            await self.pool.execute("DELETE FROM recordings WHERE storage_key = $1", result.key)
            return
        await self.pool.execute(
            "UPDATE recordings SET status = $2,"
            " ended_at = started_at + make_interval(secs => $3::bigint / 1000.0),"
            " duration_ms = $3, bytes = $4, sha256 = $5 WHERE storage_key = $1",
            result.key, result.status, result.duration_ms, result.bytes, result.sha256,
        )

    async def add_review(
        self, consultation_id: uuid.UUID, key: str, started_at: dt.datetime, result: FileResult
    ) -> None:
        await self.pool.execute(
            "INSERT INTO recordings (consultation_id, party, kind, codec, storage_key, status,"
            " started_at, ended_at, duration_ms, bytes, sha256)"
            " VALUES ($1, 'review', 'review', 'h264+aac', $2, 'complete', $3::timestamptz,"
            " $3::timestamptz + make_interval(secs => $4::bigint / 1000.0), $4, $5, $6)"
            " ON CONFLICT (storage_key) DO UPDATE SET status = 'complete',"
            " ended_at = EXCLUDED.ended_at, duration_ms = EXCLUDED.duration_ms,"
            " bytes = EXCLUDED.bytes, sha256 = EXCLUDED.sha256",
            consultation_id, key, started_at, result.duration_ms, result.bytes, result.sha256,
        )

    async def span(self, consultation_id: uuid.UUID) -> tuple[dt.datetime, dt.datetime] | None:
        """When the consultation started and ended (``None`` unless it has ended)."""
        row = await self.pool.fetchrow(
            "SELECT started_at, ended_at FROM consultations WHERE id = $1", consultation_id
        )
        if row is None or row["started_at"] is None or row["ended_at"] is None:
            return None
        return row["started_at"], row["ended_at"]

    async def unfinished(self) -> list[str]:
        """Storage keys of files still marked ``recording`` (a crash left them)."""
        rows = await self.pool.fetch(
            "SELECT storage_key FROM recordings WHERE status = 'recording' ORDER BY created_at"
        )
        return [r["storage_key"] for r in rows]

    async def finished(self, key: str) -> FileResult | None:
        """The size and hash recorded for a finished file (``None``: no such finished row)."""
        row = await self.pool.fetchrow(
            "SELECT status, duration_ms, offset_ms, bytes, sha256 FROM recordings"
            " WHERE storage_key = $1 AND status IN ('complete', 'partial')"
            " AND sha256 IS NOT NULL",
            key,
        )
        if row is None:
            return None
        return FileResult(key, row["status"], row["duration_ms"] or 0, row["offset_ms"] or 0,
                          row["bytes"], row["sha256"])

    async def for_consultation(self, consultation_id: uuid.UUID) -> list[asyncpg.Record]:
        result: list[asyncpg.Record] = await self.pool.fetch(
            f"SELECT {COLUMNS} FROM recordings WHERE consultation_id = $1"
            " ORDER BY party, kind, segment",
            consultation_id,
        )
        return result

    async def get(self, recording_id: uuid.UUID) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self.pool.fetchrow(
            f"SELECT {COLUMNS} FROM recordings WHERE id = $1", recording_id
        )
        return row

    async def delete_rows(self, ids: list[uuid.UUID]) -> None:
        await self.pool.execute("DELETE FROM recordings WHERE id = ANY($1::uuid[])", ids)

    async def older_than(self, cutoff: dt.datetime) -> list[asyncpg.Record]:
        result: list[asyncpg.Record] = await self.pool.fetch(
            f"SELECT {COLUMNS} FROM recordings WHERE created_at < $1 AND status <> 'recording'",
            cutoff,
        )
        return result

    async def pending_reviews(self) -> list[uuid.UUID]:
        """Ended consultations with finished live recordings and no review file yet."""
        rows = await self.pool.fetch(
            "SELECT DISTINCT r.consultation_id FROM recordings r"
            " JOIN consultations c ON c.id = r.consultation_id AND c.state = 'ended'"
            " WHERE r.kind <> 'review' AND NOT EXISTS (SELECT 1 FROM recordings x"
            "  WHERE x.consultation_id = r.consultation_id AND x.status = 'recording')"
            " AND NOT EXISTS (SELECT 1 FROM recordings v WHERE v.consultation_id ="
            "  r.consultation_id AND v.kind = 'review' AND v.status = 'complete')"
        )
        return [r["consultation_id"] for r in rows]


def row_json(row: asyncpg.Record) -> dict[str, Any]:
    """A row as the admin API shows it (without the signed URL)."""

    def iso(value: dt.datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": str(row["id"]),
        "party": row["party"],
        "kind": row["kind"],
        "codec": row["codec"],
        "status": row["status"],
        "started_at": iso(row["started_at"]),
        "ended_at": iso(row["ended_at"]),
        "offset_ms": row["offset_ms"],
        "duration_ms": row["duration_ms"],
        "bytes": row["bytes"],
    }
