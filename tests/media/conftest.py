from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from media.config import MediaSettings
from media.engine import MediaEngine
from tests.media.peers import Peer, Switchboard

DATA = Path(__file__).parent / "data"
VP8_OPUS = str(DATA / "vp8_opus_320x240.webm")
H264 = str(DATA / "h264_320x240.ts")
VP8_OPUS_20S = str(DATA / "vp8_opus_320x240_20s.webm")
"""20 s, 150 kbit/s: for tests that need media longer than 3.5 s (MediaPlayer's loop
mode re-sends from pts 0 without pacing, so it cannot stand in)."""


@pytest.fixture
def media_settings() -> MediaSettings:
    return MediaSettings(ice_host_addresses=("127.0.0.1",), pli_interval_s=0.3)


@pytest.fixture
def switchboard() -> Switchboard:
    return Switchboard()


@pytest.fixture
async def engine(
    media_settings: MediaSettings, switchboard: Switchboard
) -> AsyncIterator[MediaEngine]:
    engine = MediaEngine(media_settings, switchboard)
    yield engine
    await engine.close()


@pytest.fixture
async def make_peer(
    engine: MediaEngine, switchboard: Switchboard
) -> AsyncIterator[Callable[..., Peer]]:
    peers: list[Peer] = []
    room = f"room-{uuid.uuid4().hex[:8]}"

    def make(participant_id: str, room_id: str | None = None) -> Peer:
        peer = switchboard.add(Peer(engine, room_id or room, participant_id))
        peers.append(peer)
        return peer

    yield make
    for peer in peers:
        await peer.close()
