"""Recording failures are counted by stage on the app's registry (``recording.metrics``)."""

from __future__ import annotations

import uuid

import asyncpg
from prometheus_client import CollectorRegistry, generate_latest

from recording.catalog import Catalog
from recording.config import RecordingSettings
from recording.metrics import RecordingMetrics
from recording.recorder import Recorder
from recording.store import LocalStore
from tests.scrape import Scrape


async def test_a_failed_lookup_is_counted_and_the_call_goes_unrecorded(
    db_dsn: str, store: LocalStore, recording_settings: RecordingSettings
) -> None:
    pool = await asyncpg.create_pool(db_dsn, min_size=1, max_size=1)
    await pool.close()  # the database is gone for the recorder: its look-up fails for real
    registry = CollectorRegistry()
    recorder = Recorder(recording_settings, store, Catalog(pool),
                        metrics=RecordingMetrics(registry, "node-a"))
    before = Scrape.parse(generate_latest(registry).decode())
    # present at zero before any failure, so an alert on increase() sees the first one
    assert before.has("kundlinow_recording_failures_total", node="node-a", stage="lookup")
    assert before.value("kundlinow_recording_failures_total", node="node-a", stage="lookup") == 0
    room = str(uuid.uuid4())
    await recorder.participant_joined(room, "caller")
    assert room not in recorder.rooms
    after = Scrape.parse(generate_latest(registry).decode())
    assert after.value("kundlinow_recording_failures_total", node="node-a", stage="lookup") == 1
    assert after.value("kundlinow_recording_failures_total", node="node-a", stage="write") == 0
    await recorder.close()
