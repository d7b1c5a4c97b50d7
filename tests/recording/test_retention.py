"""``kundlinow recordings prune --older-than 30d`` as cron runs it: files and rows past the
age go, younger ones stay, and the run is audit-logged."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from core.db import Database
from recording.catalog import Catalog, NewFile
from recording.store import LocalStore
from recording.writer import FileResult
from tests.signalling.cluster import REPO


async def _file(catalog: Catalog, store: LocalStore, age_days: int) -> str:
    cid = uuid.uuid4()
    key = f"{cid}/caller-audio-000.mka"
    store.staging_path(key).write_bytes(b"x" * 100)
    store.write_atomic(f"{cid}/manifest.json", b"{}")
    await catalog.file_opened(NewFile(uuid.uuid4(), cid, "caller", "audio", "opus", 0, key,
                                      dt.datetime.now(dt.UTC), 0))
    await catalog.file_finished(FileResult(key, "complete", 1000, 0, 100, "ab"))
    await catalog.pool.execute(
        "UPDATE recordings SET created_at = now() - make_interval(days => $2) "
        "WHERE storage_key = $1", key, age_days,
    )
    return key


def _cli(db_dsn: str, directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TEST_DATABASE_URL"}
    env.update(DATABASE_URL=db_dsn, RECORDINGS_DIR=str(directory), LOG_LEVEL="WARNING",
               MIGRATE_ON_START="false")
    return subprocess.run(
        [sys.executable, "-m", "kundlinow", "recordings", *args], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=120, check=False,
    )


async def test_prune_removes_old_files_and_rows_and_audits(
    database: Database, db_dsn: str, tmp_path: Path
) -> None:
    store = LocalStore(tmp_path / "rec")
    catalog = Catalog(database.pool)
    old = await _file(catalog, store, 40)
    young = await _file(catalog, store, 5)
    done = _cli(db_dsn, tmp_path / "rec", "prune", "--older-than", "30d")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"deleted": 1}
    assert not store.exists(old) and not store.exists(old.split("/")[0] + "/manifest.json")
    assert store.exists(young)
    rows = await database.pool.fetch("SELECT storage_key FROM recordings")
    assert [r["storage_key"] for r in rows] == [young]
    audit = await database.pool.fetchrow(
        "SELECT details FROM audit_log WHERE action = 'recordings_pruned'"
    )
    assert audit is not None and json.loads(audit["details"])["files"] == 1
    bad = _cli(db_dsn, tmp_path / "rec", "prune", "--older-than", "soon")
    assert bad.returncode == 2 and "30d" in bad.stderr
