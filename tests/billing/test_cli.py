"""`kundlinow billing tick` as real processes: two started together over 1,000 live
consultations charge each due minute exactly once."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from billing.audit import load_snapshot
from billing.invariants import check_all
from billing.loadgen import seed_live_consultations
from core.db import Database

ROOT = Path(__file__).resolve().parents[2]


async def kundlinow(db_dsn: str, *args: str) -> tuple[int, str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": db_dsn,
        "MIGRATE_ON_START": "false",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("REDIS_URL", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kundlinow",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_two_tick_processes_charge_each_due_minute_once(
    database: Database, db_dsn: str
) -> None:
    # An hour-long billing minute keeps "due" stable while the processes run: started 2.5
    # minutes ago, so minutes 1, 2 and 3 are due for each of the 1,000 consultations.
    started = datetime.now(UTC) - timedelta(hours=2, minutes=30)
    async with database.pool.acquire() as conn:
        seeded = await seed_live_consultations(
            conn, 1000, started_at=started, funds_paise=100_000, minute_seconds=3600
        )
    results = await asyncio.gather(
        kundlinow(db_dsn, "billing", "tick", "--batch-size", "100"),
        kundlinow(db_dsn, "billing", "tick", "--batch-size", "100"),
    )
    reports = []
    for code, out, err in results:
        assert code == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    assert sum(r["charged_minutes"] for r in reports) == 3000
    per_minute = await database.pool.fetch(
        "SELECT minute, count(*) AS n FROM consultation_charges GROUP BY minute ORDER BY minute"
    )
    assert [(r["minute"], r["n"]) for r in per_minute] == [(1, 1000), (2, 1000), (3, 1000)]
    charged = await database.pool.fetch(
        "SELECT minutes_charged FROM consultations WHERE id = ANY($1::uuid[])",
        seeded.consultation_ids,
    )
    assert {r["minutes_charged"] for r in charged} == {3}
    # A third tick finds nothing due.
    code, out, err = await kundlinow(db_dsn, "billing", "tick")
    assert code == 0 and json.loads(out.strip().splitlines()[-1])["charged_minutes"] == 0
    assert check_all(await load_snapshot(database.pool)) == []
    code, out, _ = await kundlinow(db_dsn, "billing", "check")
    assert code == 0 and "ledger ok" in out
