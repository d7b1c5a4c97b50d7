"""Composing review files for ended consultations: one, or all pending (the worker)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from contextlib import ExitStack

from recording.catalog import Catalog
from recording.compose import Inputs, compose
from recording.store import RecordingStore
from recording.writer import FileResult

logger = logging.getLogger(__name__)


Keys = dict[tuple[str, str], list[str]]
"""Storage keys of the live files per (party, kind), in segment order."""


async def review_inputs(
    store: RecordingStore, catalog: Catalog, consultation_id: uuid.UUID
) -> tuple[Keys, float, dt.datetime] | None:
    """The live files, the length of the review and its start, or ``None`` if there is
    nothing to do (no finished files, files still recording, or a review already made)."""
    rows = await catalog.for_consultation(consultation_id)
    if any(r["kind"] == "review" and r["status"] == "complete" for r in rows):
        return None
    live = [r for r in rows if r["kind"] != "review"]
    if not live or any(r["status"] == "recording" for r in live):
        return None
    files: Keys = {}
    for r in sorted(live, key=lambda r: r["segment"]):
        if r["status"] in ("complete", "partial") and await asyncio.to_thread(
            store.exists, r["storage_key"]
        ):
            files.setdefault((r["party"], r["kind"]), []).append(r["storage_key"])
    span = await catalog.span(consultation_id)
    if span is not None:
        started, ended = span
    else:  # no consultation row (or not ended): from the first to the last recorded instant
        started = min(r["started_at"] - dt.timedelta(milliseconds=r["offset_ms"]) for r in live)
        ended = max(r["ended_at"] or r["started_at"] for r in live)
    duration = max(0.0, (ended - started).total_seconds())
    return files, duration, started


def _compose_stored(
    store: RecordingStore, consultation_id: str, duration_s: float, keys: Keys
) -> FileResult:
    """Compose from local copies of the stored files (downloads, for object storage)."""
    with ExitStack() as copies:
        files = {
            track: [copies.enter_context(store.local_copy(key)) for key in track_keys]
            for track, track_keys in keys.items()
        }
        return compose(store, Inputs(consultation_id, duration_s, files))


async def compose_one(
    store: RecordingStore, catalog: Catalog, consultation_id: uuid.UUID
) -> FileResult | None:
    """Compose and catalogue the review file of one consultation (idempotent)."""
    found = await review_inputs(store, catalog, consultation_id)
    if found is None:
        logger.info("review_skipped", extra={"consultation": str(consultation_id)})
        return None
    keys, duration_s, started = found
    cid = str(consultation_id)
    logger.info("review_started", extra={"consultation": cid,
                                         "duration_s": round(duration_s, 1)})
    result = await asyncio.to_thread(_compose_stored, store, cid, duration_s, keys)
    await catalog.add_review(consultation_id, result.key, started, result)
    logger.info("review_composed", extra={"consultation": cid, "bytes": result.bytes})
    return result


async def compose_pending(store: RecordingStore, catalog: Catalog) -> int:
    """One pass of the worker: every ended consultation without a review file."""
    done = 0
    for cid in await catalog.pending_reviews():
        try:
            if await compose_one(store, catalog, cid) is not None:
                done += 1
        except Exception:  # one broken consultation must not stop the others
            logger.exception("review_failed", extra={"consultation": str(cid)})
    return done
