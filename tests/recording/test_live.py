"""The live recorder fed by the SFU, with real aiortc peers (RFC 7741 VP8, RFC 6184 H.264,
RFC 7587 Opus): files per track and party, on the consultation clock, byte for byte."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Callable

from core.db import Database
from media.engine import MediaEngine
from recording.recorder import Recorder
from recording.store import LocalStore
from tests.media.conftest import H264, VP8_OPUS_20S
from tests.media.peers import Frame, Peer, Switchboard
from tests.media.test_forwarding import _annexb_nals, _match
from tests.polling import eventually
from tests.recording.helpers import Party, crossed_the_sfu, publish, read_back
from tests.recording.sources import PacedClock, PacedSource, load_packets


async def _run_consult(
    make_rec_peer: Callable[[str], Peer], engine: MediaEngine, recorder: Recorder,
    room_id: str, parties: dict[str, Party], seconds: float,
) -> None:
    for party in parties.values():
        await party.peer.connect()
    ok = await eventually(lambda: all(p.done() for p in parties.values()), seconds + 30, 0.2)
    assert ok, "sources did not play out"
    # the last packets cross the SFU (a packet lost for good only runs the deadline out:
    # the checks below judge what was recorded)
    await eventually(lambda: crossed_the_sfu(engine, room_id, [p.peer for p in parties.values()]))
    await engine.close_room(room_id)
    await recorder.close()


def _party(make_rec_peer: Callable[[str], Peer], name: str, path: str, kinds: tuple[str, ...],
           mime: str = "video/VP8", repeat_to_s: float = 0.0) -> Party:
    peer = make_rec_peer(name)
    clock = PacedClock()
    sources = {k: PacedSource(k, load_packets(path, k, repeat_to_s=repeat_to_s), clock)
               for k in kinds}
    publish(peer, *sources.values(), video_mime=mime)
    return Party(peer, clock, sources)


async def test_vp8_opus_consult_recorded_per_party_and_track(
    make_rec_peer: Callable[[str], Peer], rec_engine: tuple[MediaEngine, Switchboard],
    recorder: Recorder, store: LocalStore, database: Database, room_id: str,
) -> None:
    engine, _ = rec_engine
    parties = {
        name: _party(make_rec_peer, name, VP8_OPUS_20S, ("video", "audio"))
        for name in ("caller", "astrologer")
    }
    await _run_consult(make_rec_peer, engine, recorder, room_id, parties, 20)
    rows = await database.pool.fetch(
        "SELECT party, kind, codec, status, storage_key, duration_ms, bytes, sha256"
        " FROM recordings WHERE consultation_id = $1", uuid.UUID(room_id)
    )
    assert sorted((r["party"], r["kind"], r["codec"]) for r in rows) == [
        ("astrologer", "audio", "opus"), ("astrologer", "video", "vp8"),
        ("caller", "audio", "opus"), ("caller", "video", "vp8"),
    ]
    for row in rows:
        assert row["status"] == "complete"
        assert row["storage_key"].endswith(".webm" if row["kind"] == "video" else ".mka")
        assert store.size(row["storage_key"]) == row["bytes"]
        stored = read_back(store.local_path(row["storage_key"]))
        assert abs(stored.span_ms - 20_000) <= 500, f"{row['storage_key']}: {stored.span_ms} ms"
        assert abs(row["duration_ms"] - 20_000) <= 500
        sent = parties[row["party"]].sources[row["kind"]].sent
        assert stored.decoded >= 0.98 * len(sent), f"{stored.decoded}/{len(sent)} decoded"
        pts = [ms for ms, _ in stored.packets]
        assert all(b > a for a, b in itertools.pairwise(pts)), "timestamps not increasing"
        matched, _ = _match(sent, stored.frames(), key=lambda b: b)
        assert matched >= 0.98 * len(sent)
    manifest = json.loads(store.local_path(f"{room_id}/manifest.json").read_text())
    assert {f["status"] for f in manifest["files"].values()} == {"complete"}
    assert len(manifest["files"]) == 4 and set(manifest["clock_offsets_ms"]) == set(parties)
    assert [e["event"] for e in manifest["events"]].count("joined") == 2



async def test_h264_consult_recorded_in_mkv_nal_identical(
    make_rec_peer: Callable[[str], Peer], rec_engine: tuple[MediaEngine, Switchboard],
    recorder: Recorder, store: LocalStore, database: Database, room_id: str,
) -> None:
    engine, _ = rec_engine
    parties = {
        name: _party(make_rec_peer, name, H264, ("video",), "video/H264", repeat_to_s=20)
        for name in ("caller", "astrologer")
    }
    await _run_consult(make_rec_peer, engine, recorder, room_id, parties, 20)
    rows = await database.pool.fetch(
        "SELECT party, codec, status, storage_key FROM recordings WHERE consultation_id = $1",
        uuid.UUID(room_id),
    )
    assert sorted((r["party"], r["codec"], r["status"]) for r in rows) == [
        ("astrologer", "h264", "complete"), ("caller", "h264", "complete"),
    ]
    for row in rows:
        assert row["storage_key"].endswith(".mkv")
        stored = read_back(store.local_path(row["storage_key"]))
        assert stored.codec == "h264"
        assert abs(stored.span_ms - 20_000) <= 500, f"{stored.span_ms} ms"
        sent = parties[row["party"]].sources["video"].sent
        assert stored.decoded >= 0.98 * len(sent), f"{stored.decoded}/{len(sent)} decoded"
        # Matroska stores length-prefixed NAL units (ISO/IEC 14496-15): compare the units
        got = [Frame(0.0, _avcc_to_annexb(data), ms) for ms, data in stored.packets]
        matched, _ = _match(sent, got, key=lambda b: tuple(_annexb_nals(b)))
        assert matched >= 0.98 * len(sent)


def _avcc_to_annexb(data: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i + 4 <= len(data):
        size = int.from_bytes(data[i : i + 4], "big")
        out += b"\x00\x00\x00\x01" + data[i + 4 : i + 4 + size]
        i += 4 + size
    return bytes(out)
