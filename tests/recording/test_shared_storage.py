"""Recordings on shared object storage, end to end: a consult recorded by one node's SFU
(real aiortc peers) lands in an S3 bucket (moto's server), another node streams it with
Range, the composer (a separate ``kundlinow`` process) reads it from and writes the review
to the bucket, and ``prune`` removes the objects."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from core.db import Database
from media.engine import MediaEngine
from recording.config import RecordingSettings, S3Settings
from recording.recorder import MANIFEST, Recorder
from recording.s3store import ObjectStore
from tests.conftest import AppFactory
from tests.factories import auth, create_user
from tests.media.conftest import VP8_OPUS_20S
from tests.media.peers import Peer, Switchboard
from tests.polling import eventually
from tests.recording.helpers import Party, publish
from tests.recording.sources import PacedClock, PacedSource, load_packets
from tests.s3server import S3Server
from tests.signalling.cluster import REPO

Client = TestClient[Any, Any]
SECONDS = 5


@pytest.fixture
def bucket(s3_server: S3Server) -> S3Settings:
    return s3_server.new_bucket(prefix="shared")


@pytest.fixture
def store(bucket: S3Settings, tmp_path: Path) -> ObjectStore:
    """Node A's store (it records): stages under its own directory, commits to the bucket."""
    return ObjectStore(bucket, tmp_path / "node-a")


def _party(make_rec_peer: Callable[[str], Peer], name: str) -> Party:
    peer = make_rec_peer(name)
    clock = PacedClock()
    sources = {
        kind: PacedSource(kind, [p for p in load_packets(VP8_OPUS_20S, kind)
                                 if p.pts is not None and p.pts * p.time_base < SECONDS], clock)
        for kind in ("video", "audio")
    }
    publish(peer, *sources.values())
    return Party(peer, clock, sources)


def _cli(env: dict[str, str], *args: str) -> dict[str, Any]:
    full = {k: v for k, v in os.environ.items() if k != "TEST_DATABASE_URL"}
    full.update(env, LOG_LEVEL="WARNING", MIGRATE_ON_START="false")
    done = subprocess.run(
        [sys.executable, "-m", "kundlinow", "recordings", *args], cwd=REPO, env=full,
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


async def _record_on_node_a(
    make_rec_peer: Callable[[str], Peer], engine: MediaEngine, recorder: Recorder, room_id: str,
) -> None:
    parties = [_party(make_rec_peer, name) for name in ("caller", "astrologer")]
    for party in parties:
        await party.peer.connect()
    ok = await eventually(lambda: all(p.done() for p in parties), SECONDS + 30, 0.2)
    assert ok, "sources did not play out"
    await asyncio.sleep(0.3)  # the last packets cross the SFU
    await engine.close_room(room_id)
    await recorder.close()


async def test_recorded_on_one_node_streamed_from_another_composed_and_pruned(
    make_rec_peer: Callable[[str], Peer], rec_engine: tuple[MediaEngine, Switchboard],
    recorder: Recorder, store: ObjectStore, bucket: S3Settings, s3_server: S3Server,
    database: Database, db_dsn: str, room_id: str, tmp_path: Path, settings: Any,
    aiohttp_client: Callable[[web.Application], Awaitable[Client]], make_app: AppFactory,
) -> None:
    engine, _ = rec_engine
    await _record_on_node_a(make_rec_peer, engine, recorder, room_id)
    rows = await database.pool.fetch(
        "SELECT id, storage_key, status, bytes, sha256 FROM recordings"
        " WHERE consultation_id = $1", uuid.UUID(room_id))
    assert len(rows) == 4 and {r["status"] for r in rows} == {"complete"}
    # node A kept nothing: every file was uploaded, verified and its local copy deleted
    assert list(store.uncommitted()) == []
    assert not [p for p in (tmp_path / "node-a").rglob("*") if p.is_file()]

    node_b = await aiohttp_client(make_app(recording=RecordingSettings(
        directory=tmp_path / "node-b", mode="off", storage="s3", s3=bucket)))
    admin = await create_user(database, settings, "admin")
    for row in rows:
        url = f"/recordings/{row['id']}/content"
        whole = await node_b.get(url, headers=auth(admin.token))
        assert whole.status == 200
        data = await whole.read()
        assert len(data) == row["bytes"] and hashlib.sha256(data).hexdigest() == row["sha256"]
        size = len(data)
        for asked, start, end in ((f"bytes=100-{size // 2}", 100, size // 2 + 1),
                                  ("bytes=-777", size - 777, size),
                                  (f"bytes={size - 10}-", size - 10, size)):
            part = await node_b.get(url, headers={**auth(admin.token), "Range": asked})
            assert part.status == 206, asked
            assert await part.read() == data[start:end], asked
            assert part.headers["Content-Range"] == f"bytes {start}-{end - 1}/{size}"
        beyond = await node_b.get(url, headers={**auth(admin.token), "Range": f"bytes={size}-"})
        assert beyond.status == 416 and beyond.headers["Content-Range"] == f"bytes */{size}"
        head = await node_b.head(url, headers=auth(admin.token))
        assert head.status == 200 and head.headers["Content-Length"] == str(size)
        assert head.headers["Accept-Ranges"] == "bytes"
    assert not (tmp_path / "node-b").exists() or not list((tmp_path / "node-b").rglob("*.*"))

    env = {**s3_server.env(bucket), "DATABASE_URL": db_dsn,
           "RECORDINGS_DIR": str(tmp_path / "composer")}
    assert _cli(env, "compose", "--consultation", room_id) == {"composed": 1}
    review = await database.pool.fetchrow(
        "SELECT id, storage_key, bytes FROM recordings WHERE kind = 'review'")
    assert review is not None and review["storage_key"] == f"{room_id}/review.mp4"
    assert store.size(review["storage_key"]) == review["bytes"]
    part = await node_b.get(f"/recordings/{review['id']}/content",
                            headers={**auth(admin.token), "Range": "bytes=4-7"})
    assert part.status == 206 and await part.read() == b"ftyp"  # an MP4 from the bucket

    keys = set(store.keys(f"{room_id}/"))
    assert keys == {r["storage_key"] for r in rows} | {review["storage_key"],
                                                       f"{room_id}/{MANIFEST}"}
    assert _cli(env, "prune", "--older-than", "0m") == {"deleted": 5}
    assert list(store.keys()) == []
    assert await database.pool.fetchval("SELECT count(*) FROM recordings") == 0
