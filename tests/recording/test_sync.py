"""Lip sync on the consultation clock: a clip flashes and beeps at known instants; in the
recording every flash and its beep are within 40 ms of each other, a 5-second mute and a
5-second camera-off keep their place (gaps stay gaps), and a party joining 3 s late starts
at +3 s."""

from __future__ import annotations

import time
import uuid
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av

from core.db import Database
from media.engine import MediaEngine
from recording.recorder import Recorder
from recording.store import LocalStore
from tests.media.peers import Peer, Switchboard
from tests.polling import eventually
from tests.recording.helpers import Party, crossed_the_sfu, publish
from tests.recording.sources import PacedClock, PacedSource, load_packets, make_flash_clip

FLASHES = (1.0, 2.5, 4.0, 10.5, 12.0)
GAP = (5.0, 10.0)
SYNC_MS = 40


def flash_times(path: Path) -> list[int]:
    """Milliseconds of the first bright frame of each flash."""
    out: list[int] = []
    bright_before = False
    with av.open(str(path)) as container:
        stream: Any = container.streams.video[0]
        for frame in container.decode(stream):
            luma = bytes(frame.planes[0])[::97]
            bright = sum(luma) / len(luma) > 128
            if bright and not bright_before:
                out.append(round(frame.pts * stream.time_base * 1000))
            bright_before = bright
    return out


def beep_times(path: Path) -> list[int]:
    """Milliseconds of each beep's onset (first 1-ms block loud after a quiet stretch)."""
    out: list[int] = []
    quiet_ms = 100
    with av.open(str(path)) as container:
        stream: Any = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=48000)
        for packet_frame in container.decode(stream):
            start_ms = float(packet_frame.pts * stream.time_base * 1000)
            for frame in resampler.resample(packet_frame):
                samples = array("f", bytes(frame.planes[0]))[: frame.samples]
                for k in range(0, len(samples) - 47, 48):
                    loud = max(abs(s) for s in samples[k : k + 48]) > 0.1
                    if loud and quiet_ms >= 100:
                        out.append(round(start_ms + k / 48))
                    quiet_ms = 0 if loud else quiet_ms + 1
    return out


def _pairs(expected: tuple[float, ...], found: list[int], base_ms: int) -> list[int]:
    """For each expected instant, the found time nearest to it (relative to ``base_ms``)."""
    return [min(found, key=lambda t: abs(t - base_ms - e * 1000)) for e in expected]


async def test_flash_and_beep_stay_in_sync_through_mute_camera_off_and_late_join(
    make_rec_peer: Callable[[str], Peer], rec_engine: tuple[MediaEngine, Switchboard],
    recorder: Recorder, store: LocalStore, database: Database, room_id: str, tmp_path: Path,
) -> None:
    engine, _ = rec_engine
    clip = make_flash_clip(tmp_path / "flash.webm", FLASHES, 13.0)
    video, audio = load_packets(str(clip.path), "video"), load_packets(str(clip.path), "audio")

    def party(name: str, skip_kind: str) -> Party:
        peer = make_rec_peer(name)
        clock = PacedClock()
        sources = {
            kind: PacedSource(kind, packets, clock, (GAP,) if kind == skip_kind else ())
            for kind, packets in (("video", video), ("audio", audio))
        }
        publish(peer, *sources.values())
        return Party(peer, clock, sources)

    caller = party("caller", "audio")  # mutes for 5 s
    astrologer = party("astrologer", "video")  # turns the camera off for 5 s
    await caller.peer.connect()
    origin = recorder.rooms[room_id].origin
    # the astrologer joins when the consultation clock reads 3 s
    assert await eventually(lambda: time.time() - origin >= 3.0, 10)
    await astrologer.peer.connect()
    assert await eventually(lambda: caller.done() and astrologer.done(), 40, 0.2)
    await eventually(lambda: crossed_the_sfu(engine, room_id, [caller.peer, astrologer.peer]))
    await engine.close_room(room_id)
    await recorder.close()

    rows = await database.pool.fetch(
        "SELECT party, kind, storage_key, offset_ms FROM recordings WHERE consultation_id = $1",
        uuid.UUID(room_id),
    )
    files = {(r["party"], r["kind"]): r for r in rows}
    assert len(files) == 4
    for who, p in (("caller", caller), ("astrologer", astrologer)):
        assert p.clock.wall0 is not None
        sent_at = round((p.clock.wall0 - origin) * 1000)  # media time 0 on the consultation clock
        flashes = flash_times(store.local_path(files[(who, "video")]["storage_key"]))
        beeps = beep_times(store.local_path(files[(who, "audio")]["storage_key"]))
        v = _pairs(FLASHES, flashes, sent_at)
        a = _pairs(FLASHES, beeps, sent_at)
        for e, tv, ta in zip(FLASHES, v, a, strict=True):
            assert abs(tv - ta) <= SYNC_MS, f"{who} at {e}s: video {tv} audio {ta}"
            # gaps stay gaps: every instant keeps its distance from the first one
            assert abs((tv - v[0]) - (e - FLASHES[0]) * 1000) <= SYNC_MS, f"{who} video {e}s"
            assert abs((ta - a[0]) - (e - FLASHES[0]) * 1000) <= SYNC_MS, f"{who} audio {e}s"
        assert abs(v[0] - sent_at - FLASHES[0] * 1000) <= 150, f"{who}: {v[0]} vs {sent_at}"
    late = files[("astrologer", "audio")]["offset_ms"]
    assert astrologer.clock.wall0 is not None
    assert 3000 <= late <= round((astrologer.clock.wall0 - origin) * 1000) + 150, late
    assert files[("caller", "audio")]["offset_ms"] < 1500
