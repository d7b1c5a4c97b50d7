"""The storage interface, run against both backends (local directory, S3 on moto's server):
commit, reads, ranged reads, atomic replace, delete, listing, key checks; and the S3
backend's verified upload, its failure path and start-up recovery."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import socket
import uuid
from fractions import Fraction
from pathlib import Path

import av
import pytest

from core.db import Database
from recording.catalog import Catalog, NewFile
from recording.config import S3Settings
from recording.recorder import recover, stored_manifest
from recording.s3store import ObjectStore, UploadMismatch
from recording.store import BadKey, LocalStore, RecordingStore
from recording.writer import CONTAINERS
from tests.s3server import S3Server


def _stage(store: RecordingStore, key: str, data: bytes) -> str:
    store.staging_path(key).write_bytes(data)
    return hashlib.sha256(data).hexdigest()


async def _ranged(store: RecordingStore, key: str, start: int, end: int) -> bytes:
    return b"".join([chunk async for chunk in store.read_range(key, start, end)])


async def test_committed_files_read_back_whole_and_by_range(any_store: RecordingStore) -> None:
    cid = uuid.uuid4()
    key = f"{cid}/caller-video-000.webm"
    data = os.urandom(700_000)  # several read chunks
    any_store.commit(key, len(data), _stage(any_store, key, data))
    assert any_store.exists(key) and any_store.size(key) == len(data)
    # the object store keeps no staged copy after a verified upload; the local one stages in place
    assert any_store.staged(key) is isinstance(any_store, LocalStore)
    assert list(any_store.uncommitted()) == []
    with any_store.open_read(key) as f:
        assert f.read() == data
    with any_store.local_copy(key) as path:
        assert path.read_bytes() == data
    for start, end in ((0, 1), (100, 1100), (262_143, 524_289), (699_950, 700_000)):
        assert await _ranged(any_store, key, start, end) == data[start:end]
    assert list(any_store.keys(f"{cid}/")) == [key]


async def test_replace_delete_and_missing(any_store: RecordingStore) -> None:
    cid = uuid.uuid4()
    manifest = f"{cid}/manifest.json"
    any_store.write_atomic(manifest, b'{"v": 1}')
    any_store.write_atomic(manifest, b'{"v": 2}')
    with any_store.open_read(manifest) as f:
        assert f.read() == b'{"v": 2}'
    other = f"{cid}/astrologer-audio-000.mka"
    any_store.commit(other, 3, _stage(any_store, other, b"abc"))
    assert sorted(any_store.keys(f"{cid}/")) == sorted([manifest, other])
    any_store.delete(other)
    any_store.delete(other)  # a missing key is not an error
    assert not any_store.exists(other)
    with pytest.raises(FileNotFoundError):
        any_store.size(other)
    assert list(any_store.keys(f"{cid}/")) == [manifest]


@pytest.mark.parametrize("key", ["../etc/passwd", "abc", f"{uuid.uuid4()}/../x", "/abs/path"])
def test_every_backend_refuses_keys_that_are_paths(any_store: RecordingStore, key: str) -> None:
    for call in (any_store.staging_path, any_store.exists, any_store.delete, any_store.size):
        with pytest.raises(BadKey):
            call(key)


def test_a_mismatched_upload_keeps_the_staged_file(s3_server: S3Server, tmp_path: Path) -> None:
    store = ObjectStore(s3_server.new_bucket(), tmp_path / "spool")
    key = f"{uuid.uuid4()}/caller-audio-000.mka"
    sha = _stage(store, key, b"the staged bytes")
    with pytest.raises(UploadMismatch):
        store.commit(key, 16, "0" * 64)  # not the file's hash: never verified
    assert store.staged(key) and list(store.uncommitted()) == [key]
    store.commit(key, 16, sha)
    assert not store.staged(key) and store.size(key) == 16


def _matroska(path: Path, frames: int) -> None:
    """An Opus track in Matroska, as a crash leaves one to recovery (never decoded)."""
    with av.open(str(path), "w", format=CONTAINERS["opus"][0]) as container:
        stream = container.add_stream("opus", rate=48000, layout="stereo")
        stream.time_base = Fraction(1, 1000)
        for i in range(frames):
            packet = av.Packet(bytes([0xFC]) + os.urandom(60))
            packet.pts = packet.dts = i * 20
            packet.time_base = Fraction(1, 1000)
            packet.stream = stream
            container.mux(packet)


async def test_recovery_uploads_crash_left_and_uncommitted_files(
    s3_server: S3Server, tmp_path: Path, database: Database,
) -> None:
    store = ObjectStore(s3_server.new_bucket(), tmp_path / "spool")
    catalog = Catalog(database.pool)
    cid = uuid.uuid4()
    left = f"{cid}/caller-audio-000.mka"  # still 'recording': the process died
    _matroska(store.staging_path(left), 100)
    failed = f"{cid}/astrologer-audio-000.mka"  # finished, but its upload never succeeded
    data = os.urandom(5000)
    sha = _stage(store, failed, data)
    elsewhere = f"{cid}/caller-video-000.webm"  # recording on another node: not staged here
    now = dt.datetime.now(dt.UTC)
    for key, party, kind in ((left, "caller", "audio"), (failed, "astrologer", "audio"),
                             (elsewhere, "caller", "video")):
        await catalog.file_opened(NewFile(uuid.uuid4(), cid, party, kind,
                                          "vp8" if kind == "video" else "opus", 0, key, now, 0))
    await database.pool.execute(
        "UPDATE recordings SET status = 'complete', bytes = $2, sha256 = $3"
        " WHERE storage_key = $1", failed, len(data), sha,
    )
    [result] = await recover(store, catalog)
    assert result.key == left and result.status == "partial"
    assert 1900 <= result.duration_ms <= 2100
    assert list(store.uncommitted()) == []
    with store.local_copy(left) as path:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == result.sha256
        with av.open(str(path)) as container:
            assert sum(1 for _ in container.demux(container.streams[0])) >= 100
    with store.open_read(failed) as f:
        assert f.read() == data
    rows = {r["storage_key"]: r["status"]
            for r in await database.pool.fetch("SELECT storage_key, status FROM recordings")}
    assert rows == {left: "partial", failed: "complete", elsewhere: "recording"}


def test_a_missing_object_reads_as_not_found(any_store: RecordingStore) -> None:
    key = f"{uuid.uuid4()}/manifest.json"
    assert stored_manifest(any_store, key.split("/")[0]) is None
    with pytest.raises(FileNotFoundError):
        any_store.open_read(key)
    any_store.write_atomic(key, b'{"files": {}}')
    assert stored_manifest(any_store, key.split("/")[0]) == {"files": {}}


def test_an_unreachable_service_fails_the_commit_and_keeps_the_file(tmp_path: Path) -> None:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = ObjectStore(S3Settings(bucket="nowhere", endpoint=f"http://127.0.0.1:{port}",
                                   access_key_id="k", secret_access_key="s"), tmp_path / "spool")
    key = f"{uuid.uuid4()}/caller-audio-000.mka"
    sha = _stage(store, key, b"kept until it is stored")
    with pytest.raises(OSError):
        store.commit(key, 23, sha)
    assert store.staged(key) and list(store.uncommitted()) == [key]
