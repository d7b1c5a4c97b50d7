from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from core.db import Database
from media.config import MediaSettings
from media.engine import MediaEngine
from recording.catalog import Catalog, ConsultInfo
from recording.config import RecordingSettings
from recording.recorder import Recorder
from recording.s3store import ObjectStore
from recording.store import LocalStore, RecordingStore
from tests.media.peers import Peer, Switchboard
from tests.s3server import S3Server


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "recordings")


@pytest.fixture
def room_id() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def recording_settings(tmp_path: Path) -> RecordingSettings:
    return RecordingSettings(directory=tmp_path / "recordings")


@pytest.fixture
async def recorder(
    database: Database, store: LocalStore, recording_settings: RecordingSettings
) -> AsyncIterator[Recorder]:
    """Records rooms whose participants are named ``caller`` and ``astrologer``."""

    async def resolve(room_id: str) -> ConsultInfo:
        parties = {"caller": "caller", "astrologer": "astrologer"}
        return ConsultInfo(uuid.UUID(room_id), "video", parties, None)

    recorder = Recorder(recording_settings, store, Catalog(database.pool), resolve)
    yield recorder
    await recorder.close()


@pytest.fixture
async def rec_engine(recorder: Recorder) -> AsyncIterator[tuple[MediaEngine, Switchboard]]:
    switchboard = Switchboard()
    engine = MediaEngine(
        MediaSettings(ice_host_addresses=("127.0.0.1",), pli_interval_s=0.3), switchboard,
        recorder,
    )
    yield engine, switchboard
    await engine.close()


@pytest.fixture
async def make_rec_peer(
    rec_engine: tuple[MediaEngine, Switchboard], room_id: str
) -> AsyncIterator[Callable[[str], Peer]]:
    engine, switchboard = rec_engine
    peers: list[Peer] = []

    def make(participant_id: str) -> Peer:
        peer = switchboard.add(Peer(engine, room_id, participant_id))
        peers.append(peer)
        return peer

    yield make
    for peer in peers:
        await peer.close()


@pytest.fixture(params=["local", "s3"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> RecordingStore:
    """Each storage backend in turn: the local directory, and a fresh bucket on moto's S3
    server (staging under the test's directory)."""
    if request.param == "local":
        return LocalStore(tmp_path / "recordings")
    server: S3Server = request.getfixturevalue("s3_server")
    return ObjectStore(server.new_bucket(prefix="rec"), tmp_path / "spool")
