"""Deleting recordings: one consultation's by an admin (with a reason), or all older than an
age (``kundlinow recordings prune``). Files first, then rows; both audit-logged."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Iterable

import asyncpg

from core import audit
from recording.catalog import Catalog
from recording.recorder import MANIFEST
from recording.store import RecordingStore


async def _delete(store: RecordingStore, catalog: Catalog, rows: Iterable[asyncpg.Record]) -> int:
    rows = list(rows)
    for row in rows:
        await asyncio.to_thread(store.delete, row["storage_key"])
    await catalog.delete_rows([row["id"] for row in rows])
    for cid in {row["consultation_id"] for row in rows}:
        if not await catalog.for_consultation(cid):  # nothing left: the manifest goes too
            await asyncio.to_thread(store.delete, f"{cid}/{MANIFEST}")
    return len(rows)


async def delete_consultation(
    store: RecordingStore, catalog: Catalog, consultation_id: uuid.UUID,
    actor_id: uuid.UUID, reason: str,
) -> int:
    """Delete every recording of a consultation (live files and the review file)."""
    rows = await catalog.for_consultation(consultation_id)
    deleted = await _delete(store, catalog, rows)
    await audit.record(
        catalog.pool, actor_id, "recordings_deleted", "consultation", str(consultation_id),
        {"reason": reason, "files": deleted},
    )
    return deleted


async def prune(
    store: RecordingStore, catalog: Catalog, older_than: dt.timedelta, now: dt.datetime,
) -> int:
    """Delete recordings created more than ``older_than`` before ``now``."""
    cutoff = now - older_than
    rows = await catalog.older_than(cutoff)
    deleted = await _delete(store, catalog, rows)
    consultations = sorted({str(row["consultation_id"]) for row in rows})
    await audit.record(
        catalog.pool, None, "recordings_pruned", "recordings", cutoff.isoformat(),
        {"older_than_s": int(older_than.total_seconds()), "files": deleted,
         "consultations": consultations},
    )
    return deleted
