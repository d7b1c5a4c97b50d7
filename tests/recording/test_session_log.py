"""The recorder writes its part of the session log: a recorded aiortc consult through the real
app (``create_app``: the SFU, the recorder and the session log wired as in production) shows
``recording_started``, ``recording_segment`` per new file and ``recording_stopped`` for each
party's track in ``/admin/consultations/{id}/log``, in order, with the files' storage keys."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from api.keys import CONSULTATIONS, MEDIA
from core.db import Database
from kundlinow.app import create_app
from kundlinow.config import Settings
from media.config import MediaSettings
from recording.config import RecordingSettings
from tests.billing.helpers import grant
from tests.factories import auth, create_user
from tests.media.peers import Peer, Switchboard
from tests.polling import eventually
from tests.recording.helpers import Party, crossed_the_sfu, publish
from tests.recording.sources import PacedClock, PacedSource, load_packets, make_flash_clip

RECORDING = ("recording_started", "recording_segment", "recording_stopped")


async def _log(client: Any, token: str, cid: str, stopped: int) -> list[dict[str, Any]]:
    """The admin's view of the log once it holds ``stopped`` ``recording_stopped`` events."""
    items: list[dict[str, Any]] = []

    async def complete() -> bool:
        nonlocal items
        response = await client.get(f"/admin/consultations/{cid}/log", headers=auth(token))
        assert response.status == 200
        items = (await response.json())["items"]
        return sum(e["kind"] == "recording_stopped" for e in items) >= stopped

    assert await eventually(complete, 60, 0.2), [e["kind"] for e in items]
    return items


async def test_recording_events_are_in_the_session_log_in_order(
    aiohttp_client: Any, settings: Settings, database: Database, tmp_path: Path,
) -> None:
    settings = replace(
        settings,
        media=MediaSettings(ice_host_addresses=("127.0.0.1",), pli_interval_s=0.3),
        recording=RecordingSettings(directory=tmp_path / "rec", segment_s=2.0),
    )
    client = await aiohttp_client(create_app(settings))
    caller, astro = await create_user(database, settings), await create_user(
        database, settings, "consultant")
    admin = await create_user(database, settings, "admin")
    await grant(database, caller.id, 1_000_000)
    service = client.app[CONSULTATIONS]
    consultation = await service.request(caller.id, astro.id, "video")
    await service.accept(consultation.id, astro.id)
    cid = str(consultation.id)
    engine = client.app[MEDIA]
    board = Switchboard()
    engine.bind_signal(board)  # aiortc peers instead of sockets: the hub is not in this test
    parties: dict[str, Party] = {}
    try:
        for name, user in (("caller", caller), ("astrologer", astro)):
            clip = make_flash_clip(tmp_path / f"{name}.webm", (1.0,), 5.0)
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
        await engine.close_room(cid)
        items = await _log(client, admin.token, cid, stopped=4)
    finally:
        for party in parties.values():
            await party.peer.close()

    actors = {"caller": str(caller.id), "astrologer": str(astro.id)}
    rows = await database.pool.fetch(
        "SELECT party, kind, codec, storage_key FROM recordings WHERE consultation_id = $1"
        " ORDER BY party, kind, segment", consultation.id,
    )
    recorded = [e for e in items if e["kind"] in RECORDING]
    for who, kind, codec in (("caller", "audio", "opus"), ("caller", "video", "vp8"),
                               ("astrologer", "audio", "opus"), ("astrologer", "video", "vp8")):
        track = [e for e in recorded if (e["data"]["party"], e["data"]["kind"]) == (who, kind)]
        kinds = [e["kind"] for e in track]
        # 5 s in 2-second files: a start, at least one new file, one stop
        assert kinds[0] == "recording_started" and kinds[-1] == "recording_stopped", kinds
        assert set(kinds[1:-1]) == {"recording_segment"}, kinds
        assert all(e["actor_id"] == actors[who] and e["data"]["codec"] == codec
                   for e in track)
        keys = [e["data"]["key"] for e in track[:-1]]
        assert keys == [r["storage_key"] for r in rows
                        if (r["party"], r["kind"]) == (who, kind)], (keys, rows)
        assert track[-1]["data"]["key"] == keys[-1]
        assert [e["data"]["segment"] for e in track[:-1]] == list(range(len(keys)))
        assert all(e["node_id"] for e in track)
    kinds = [e["kind"] for e in items]
    # each party's SFU join comes before its recording, which stops before it leaves
    assert kinds.index("joined") < kinds.index("recording_started")
    assert kinds.count("joined") == kinds.count("left") == 2  # close_room logs each leave
    stops = [i for i, k in enumerate(kinds) if k == "recording_stopped"]
    lefts = [i for i, k in enumerate(kinds) if k == "left"]
    assert stops[1] < lefts[0] < stops[2] and stops[3] < lefts[1], kinds
