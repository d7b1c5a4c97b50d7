"""``kill -9`` of a real server process 10 s into a recorded video consult: after a restart
every file decodes, ends within 1 s of the kill, and is marked ``partial``."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import av

from core.db import Database
from kundlinow.config import Settings
from recording.store import LocalStore
from tests.billing.helpers import grant
from tests.conftest import TEST_JWT_SECRET
from tests.factories import create_user
from tests.polling import eventually
from tests.recording.helpers import read_back
from tests.signalling.cluster import REPO, Node, free_port, wait_ready
from tests.signalling.media_peer import WsPeer, start_consult
from tests.signalling.wsclient import connect


def _recorded_ms(path: Path) -> int:
    """Milliseconds of media in a file being recorded, from its first frame to its last."""
    try:
        with av.open(str(path)) as container:
            pts = [p.pts for p in container.demux(container.streams[0]) if p.pts is not None]
    except (av.FFmpegError, IndexError):
        return 0
    return pts[-1] - pts[0] if pts else 0


@asynccontextmanager
async def one_node(db_dsn: str, recordings: Path, log: Path) -> AsyncIterator[Node]:
    """One ``kundlinow serve`` process (no Redis), ready; killed on exit if still running."""
    env = {k: v for k, v in os.environ.items() if k != "TEST_DATABASE_URL"}
    port = free_port()
    env.update(
        DATABASE_URL=db_dsn, JWT_SECRET=TEST_JWT_SECRET, ENV="test", LOG_FORMAT="json",
        LOG_LEVEL="WARNING", MIGRATE_ON_START="false", MIN_START_MINUTES="1", HOST="127.0.0.1",
        MEDIA_ICE_HOSTS="127.0.0.1", RECORDINGS_DIR=str(recordings), PORT=str(port),
    )
    with log.open("ab") as out:
        process = subprocess.Popen(  # noqa: ASYNC220 - returns at once; readiness awaited below
            [sys.executable, "-m", "kundlinow", "serve"], cwd=REPO, env=env, stdout=out,
            stderr=subprocess.STDOUT,
        )
    node = Node("solo", f"http://127.0.0.1:{port}", process, log)
    try:
        async with aiohttp.ClientSession() as session:
            await wait_ready(session, node)
        yield node
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


async def test_kill_9_leaves_partial_files_that_decode_up_to_the_kill(
    database: Database, settings: Settings, db_dsn: str, tmp_path: Path
) -> None:
    recordings = tmp_path / "recordings"
    store = LocalStore(recordings)
    astro_user = await create_user(database, settings, "consultant")
    caller_user = await create_user(database, settings)
    await grant(database, caller_user.id, 1_000_000)
    peers: list[WsPeer] = []
    async with one_node(db_dsn, recordings, tmp_path / "node.log") as node:
        async with aiohttp.ClientSession() as session:
            try:
                caller = await connect(session, f"{node.url}/ws", caller_user.token)
                astro = await connect(session, f"{node.url}/ws", astro_user.token)
                cid = await start_consult(caller, astro, str(astro_user.id))
                for client in (caller, astro):
                    peer = WsPeer(client, cid)
                    peer.publish()
                    peers.append(peer)
                    await peer.connect()

                async def four_files() -> bool:
                    count = await database.pool.fetchval(
                        "SELECT count(*) FROM recordings WHERE consultation_id = $1",
                        uuid.UUID(cid))
                    return bool(count == 4)

                assert await eventually(four_files, 20)
                # the kill comes once every file on disk holds 10 s (read live, as written; on a
                # thread: this loop also runs the publishing peers). A file's catalogue row can
                # come before the file itself, which the writer opens at its next hand-over.
                files: list[Path] = []

                async def ten_seconds_on_disk() -> bool:
                    files[:] = await asyncio.to_thread(
                        lambda: list(recordings.glob(f"{cid}/*-*-*.*")))
                    if len(files) < 4:
                        return False
                    held = await asyncio.to_thread(lambda: [_recorded_ms(f) for f in files])
                    return min(held) >= 10_000

                assert await eventually(ten_seconds_on_disk, 60, 0.5), [
                    (f.name, _recorded_ms(f)) for f in files]
                killed_at = time.time()
                node.process.send_signal(signal.SIGKILL)
                node.process.wait()
            finally:
                for peer in peers:
                    await peer.close()
    # the restart recovers what the crash left behind
    async with one_node(db_dsn, recordings, tmp_path / "node.log"):
        rows = await database.pool.fetch(
            "SELECT r.status, r.storage_key, r.duration_ms, r.sha256, c.started_at"
            " FROM recordings r JOIN consultations c ON c.id = r.consultation_id"
            " WHERE r.consultation_id = $1", uuid.UUID(cid),
        )
    assert len(rows) == 4
    for row in rows:
        assert row["status"] == "partial", row
        stored = read_back(store.local_path(row["storage_key"]))
        # what was on disk when the kill came (10 s on the consultation clock) is still there,
        # but for at most the last Cluster, which the read above may have caught half-written;
        # not the duration: a party that joined late starts its files late
        assert row["sha256"] and row["duration_ms"] > 0
        assert stored.packets[-1][0] >= 10_000 - 250, (row["storage_key"], stored.packets[-1][0])
        assert stored.decoded >= len(stored.packets) * 0.98
        ends_at = row["started_at"].timestamp() + stored.packets[-1][0] / 1000
        lost = killed_at - ends_at
        assert -0.2 <= lost <= 1.0, (row["storage_key"], lost)
