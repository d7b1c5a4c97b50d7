"""The manifest is written once per hand-over however many things changed, in order with the
files: a gap on every track at once (a party's network coming back) is one write, not one
encoding and ``fsync`` per event on the event loop."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from core.db import Database
from recording.catalog import Catalog, ConsultInfo
from recording.config import RecordingSettings
from recording.recorder import MANIFEST, RoomRecording
from recording.store import LocalStore
from recording.writer import Writer

EVENTS = 40


class CountingStore(LocalStore):
    """The local store, noting each object it replaces."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.replaced: list[str] = []

    def write_atomic(self, key: str, data: bytes) -> None:
        self.replaced.append(key)
        super().write_atomic(key, data)


async def test_a_burst_of_events_is_one_manifest_write(tmp_path: Path, database: Database) -> None:
    store = CountingStore(tmp_path / "recordings")
    writer = Writer(store)
    info = ConsultInfo(uuid.uuid4(), "video", {"a": "caller", "b": "astrologer"}, None)
    room = RoomRecording(info, RecordingSettings(directory=store.root), store,
                         Catalog(database.pool), writer)
    key = f"{info.consultation_id}/{MANIFEST}"
    for n in range(EVENTS):
        room.note({"event": "gap", "party": "caller", "kind": "audio",
                   "from_ms": 1000 * n, "to_ms": 1000 * n + 1500})
    await writer.drain()  # the hand-over the burst woke, written and synced
    assert store.replaced == [key]
    manifest = json.loads(store.local_path(key).read_text())
    assert [e["from_ms"] for e in manifest["events"]] == [1000 * n for n in range(EVENTS)]

    room.note({"event": "left", "party": "astrologer"})
    await room.close()  # a change after the last hand-over is written at close, then the end
    await writer.close()
    manifest = json.loads(store.local_path(key).read_text())
    assert manifest["events"][-1]["event"] == "left" and "stopped_at" in manifest
    assert len(store.replaced) <= 3
