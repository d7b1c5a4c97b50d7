"""The review file of a real recorded consultation: one audio track with each voice where
that party spoke, one video track with both pictures side by side, the consultation's length."""

from __future__ import annotations

import math
from array import array
from pathlib import Path
from typing import Any

import av

from billing.config import BillingSettings
from billing.consultations import ConsultationService
from core.bus import LocalBus
from core.clock import SystemClock
from core.db import Database
from kundlinow.config import Settings
from media.config import MediaSettings
from media.engine import MediaEngine
from recording.catalog import Catalog
from recording.config import RecordingSettings
from recording.recorder import Recorder
from recording.review import compose_one
from recording.store import LocalStore
from tests.billing.helpers import grant
from tests.factories import create_user
from tests.media.peers import Peer, Switchboard
from tests.polling import eventually
from tests.recording.helpers import Party, crossed_the_sfu, publish
from tests.recording.sources import PacedClock, PacedSource, load_packets, make_flash_clip

BEEPS = {"caller": (1.0, 2.0), "astrologer": (3.0, 4.0)}


def _audio_levels(path: Path) -> tuple[list[float], float]:
    """Peak level per 10 ms of the review's (only) audio track, and its duration."""
    samples = array("f")
    with av.open(str(path)) as container:
        assert len(container.streams.audio) == 1 and len(container.streams.video) == 1
        resampler = av.AudioResampler(format="flt", layout="mono", rate=48000)
        for decoded in container.decode(audio=0):
            for frame in resampler.resample(decoded):
                samples.extend(array("f", bytes(frame.planes[0]))[: frame.samples])
        duration = (container.duration or 0) / 1_000_000
    peaks = [max(abs(s) for s in samples[k : k + 480]) for k in range(0, len(samples), 480)]
    return peaks, duration


def _tile_brightness(path: Path, at_s: float) -> tuple[float, float]:
    """Mean luma of the left and right halves of the frame shown at ``at_s``."""
    with av.open(str(path)) as container:
        stream: Any = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.width == 640
        for frame in container.decode(stream):
            if float(frame.pts * stream.time_base) + 1e-6 >= at_s:
                plane = frame.planes[0]
                rows = [bytes(plane)[y * plane.line_size : y * plane.line_size + 640]
                        for y in range(0, 240, 8)]
                left = [b for row in rows for b in row[:320:4]]
                right = [b for row in rows for b in row[320::4]]
                return sum(left) / len(left), sum(right) / len(right)
    raise AssertionError(f"no frame at {at_s}s")


async def test_review_mixes_both_voices_and_puts_pictures_side_by_side(
    database: Database, settings: Settings, tmp_path: Path,
) -> None:
    caller_user = await create_user(database, settings)
    astro_user = await create_user(database, settings, "consultant")
    await grant(database, caller_user.id, 1_000_000)
    service = ConsultationService(database, LocalBus(), SystemClock(), BillingSettings())
    consultation = await service.request(caller_user.id, astro_user.id, "video")
    await service.accept(consultation.id, astro_user.id)
    cid = str(consultation.id)
    store = LocalStore(tmp_path / "rec")
    catalog = Catalog(database.pool)
    recorder = Recorder(RecordingSettings(directory=tmp_path / "rec"), store, catalog)
    board = Switchboard()
    engine = MediaEngine(MediaSettings(ice_host_addresses=("127.0.0.1",)), board, recorder)
    parties: dict[str, Party] = {}
    try:
        for name, user in (("caller", caller_user), ("astrologer", astro_user)):
            clip = make_flash_clip(tmp_path / f"{name}.webm", BEEPS[name], 5.0)
            clock = PacedClock()
            sources = {k: PacedSource(k, load_packets(str(clip.path), k), clock)
                       for k in ("video", "audio")}
            peer = board.add(Peer(engine, cid, str(user.id)))
            publish(peer, *sources.values())
            parties[name] = Party(peer, clock, sources)
            await peer.connect()
        assert await eventually(lambda: all(p.done() for p in parties.values()), 30, 0.2)
        peers = [p.peer for p in parties.values()]
        await eventually(lambda: crossed_the_sfu(engine, cid, peers))  # the last packets
        await service.end(consultation.id, "completed", actor_id=caller_user.id)
        await engine.close_room(cid)
        await recorder.close()
    finally:
        for party in parties.values():
            await party.peer.close()
        await engine.close()
    result = await compose_one(store, catalog, consultation.id)
    assert result is not None
    assert await compose_one(store, catalog, consultation.id) is None  # idempotent
    row = await database.pool.fetchrow(
        "SELECT r.party, r.kind, r.status, r.duration_ms, r.storage_key, c.started_at,"
        " c.ended_at FROM recordings r JOIN consultations c ON c.id = r.consultation_id"
        " WHERE r.consultation_id = $1 AND r.kind = 'review'", consultation.id,
    )
    assert row is not None and row["party"] == "review" and row["status"] == "complete"
    path = store.local_path(row["storage_key"])
    length = (row["ended_at"] - row["started_at"]).total_seconds()
    peaks, duration = _audio_levels(path)
    assert abs(duration - length) <= 0.3, (duration, length)
    started = row["started_at"].timestamp()
    for name, party in parties.items():
        assert party.clock.wall0 is not None
        zero = party.clock.wall0 - started  # the party's media time 0 on the review's clock
        for beep in BEEPS[name]:
            # 50 ms in: the AAC encoder's priming delay and the transport shift the onset
            window = peaks[math.floor((zero + beep + 0.05) * 100):][:5]
            assert min(window) > 0.1, f"{name}'s voice missing at {beep}s: {window}"
            quiet = peaks[math.floor((zero + beep - 0.45) * 100):][:30]
            assert max(quiet) < 0.05, f"noise before {name}'s beep at {beep}s"
        # at the party's last flash: a loaded machine may delay the first key frame the
        # recorder can start the party's video on past the first one (the clip has one a second)
        left, right = _tile_brightness(path, zero + BEEPS[name][-1] + 0.02)
        lit, other = (left, right) if name == "caller" else (right, left)
        assert lit > 150 and other < 100, (name, left, right)
