"""A new file every ``RECORDING_SEGMENT_SECONDS``, each video segment starting on a key frame,
the segments of a track following each other without a hole."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from pathlib import Path

import av
import pytest

from core.db import Database
from media.engine import MediaEngine
from recording.config import RecordingSettings
from recording.depacketize import vp8_dimensions
from recording.recorder import Recorder
from recording.store import LocalStore
from tests.media.conftest import VP8_OPUS_20S
from tests.media.peers import Peer, Switchboard
from tests.polling import eventually
from tests.recording.helpers import Party, crossed_the_sfu, publish, read_back
from tests.recording.sources import PacedClock, PacedSource, load_packets


@pytest.fixture
def recording_settings(tmp_path: Path) -> RecordingSettings:
    return RecordingSettings(directory=tmp_path / "recordings", segment_s=3.0)


async def test_segments_rotate_on_key_frames_without_holes(
    make_rec_peer: Callable[[str], Peer], rec_engine: tuple[MediaEngine, Switchboard],
    recorder: Recorder, store: LocalStore, database: Database, room_id: str,
) -> None:
    engine, _ = rec_engine
    peer = make_rec_peer("caller")
    clock = PacedClock()
    sources = {}
    for kind in ("video", "audio"):
        packets = [p for p in load_packets(VP8_OPUS_20S, kind)
                   if (p.pts or 0) * (p.time_base or 1) < 8]
        sources[kind] = PacedSource(kind, packets, clock)
    publish(peer, *sources.values())
    party = Party(peer, clock, sources)
    await peer.connect()
    assert await eventually(party.done, 30, 0.2)
    await eventually(lambda: crossed_the_sfu(engine, room_id, [peer]))  # the last packets
    await engine.close_room(room_id)
    await recorder.close()
    rows = await database.pool.fetch(
        "SELECT kind, segment, storage_key, status, offset_ms FROM recordings"
        " WHERE consultation_id = $1 ORDER BY kind, segment", uuid.UUID(room_id),
    )
    for kind in ("audio", "video"):
        segments = [r for r in rows if r["kind"] == kind]
        assert [r["segment"] for r in segments] == [0, 1, 2], kind
        assert all(r["status"] == "complete" for r in segments)
        stored = [read_back(store.local_path(r["storage_key"])) for r in segments]
        for before, after in itertools.pairwise(stored):
            hole = after.first_ms - before.packets[-1][0]
            assert 0 < hole <= 100, f"{kind}: {hole} ms between segments"
            assert 2900 <= before.span_ms <= 3600, before.span_ms
        if kind == "video":
            for s in stored:
                assert vp8_dimensions(s.packets[0][1]) is not None, "segment starts on a delta"
                with av.open(str(store.local_path(segments[0]["storage_key"]))) as c:
                    assert c.duration is not None  # remuxed: duration and cues written
