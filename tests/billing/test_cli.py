"""`kundlinow billing tick|run` and `payouts run` as real processes: concurrent ticks charge each
due minute once; a terminated database backend does not stop a tick; one failed payout does not
stop the others."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from bench.loadgen import seed_live_consultations
from billing import ledger
from billing.audit import load_snapshot
from billing.invariants import check_all
from billing.model import PROMOTIONS, AccountKind, Transfer
from billing.payouts import PayoutService
from core.clock import SystemClock
from core.db import Database
from kundlinow.config import Settings
from tests.billing.helpers import terminate_backend_waiting_on
from tests.factories import create_user
from tests.scrape import Scrape

ROOT = Path(__file__).resolve().parents[2]


async def kundlinow(
    db_dsn: str, *args: str, extra_env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": db_dsn,
        "MIGRATE_ON_START": "false",
        "LOG_LEVEL": "WARNING",
        **(extra_env or {}),
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


async def test_a_cron_tick_writes_its_metrics_for_the_textfile_collector(
    database: Database, db_dsn: str, tmp_path: Path
) -> None:
    started = datetime.now(UTC) - timedelta(hours=1, minutes=30)  # minutes 1 and 2 are due
    async with database.pool.acquire() as conn:
        await seed_live_consultations(
            conn, 5, started_at=started, funds_paise=100_000, minute_seconds=3600
        )
    path = tmp_path / "kundlinow_billing.prom"
    code, out, err = await kundlinow(db_dsn, "billing", "tick", "--metrics-file", str(path),
                                     extra_env={"NODE_ID": "cron-a"})
    assert code == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report["charged_minutes"] == 10
    scrape = Scrape.parse(path.read_text())
    assert scrape.value("kundlinow_billing_charged_minutes_total", node="cron-a") == 10
    assert scrape.value("kundlinow_billing_charged_paise_total", node="cron-a") == (
        report["charged_paise"]
    )
    assert scrape.value("kundlinow_billing_tick_duration_seconds_count", node="cron-a") == 1
    assert scrape.value("kundlinow_billing_tick_failures_total", node="cron-a") == 0
    last = scrape.value("kundlinow_billing_last_tick_timestamp_seconds", node="cron-a")
    assert abs(last - datetime.now(UTC).timestamp()) < 120


async def test_a_tick_whose_backend_is_terminated_retries_and_finishes(
    database: Database, db_dsn: str
) -> None:
    started = datetime.now(UTC) - timedelta(hours=1, minutes=30)
    async with database.pool.acquire() as conn:
        await seed_live_consultations(
            conn, 20, started_at=started, funds_paise=100_000, minute_seconds=3600
        )
    hold = await asyncpg.connect(db_dsn)
    try:
        tr = hold.transaction()
        await tr.start()
        await hold.execute("SELECT 1 FROM ledger_accounts ORDER BY id FOR UPDATE")
        tick = asyncio.ensure_future(kundlinow(db_dsn, "billing", "tick"))
        await terminate_backend_waiting_on(database, hold)
        await tr.rollback()
    finally:
        await hold.close()
    code, _, err = await tick
    assert code == 0, err
    charged = await database.pool.fetchval("SELECT count(*) FROM consultation_charges")
    assert charged == 40  # minutes 1 and 2 of each, once
    assert check_all(await load_snapshot(database.pool)) == []


async def test_billing_run_carries_on_after_a_terminated_backend(
    database: Database, db_dsn: str
) -> None:
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
        "billing",
        "run",
        "--interval",
        "0.2",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        await asyncio.wait_for(proc.stdout.readline(), 60)  # it ticks
        hold = await asyncpg.connect(db_dsn)
        try:
            tr = hold.transaction()
            await tr.start()
            await hold.execute("LOCK TABLE consultations IN ACCESS EXCLUSIVE MODE")
            await terminate_backend_waiting_on(database, hold)
            await tr.rollback()
        finally:
            await hold.close()
        for _ in range(3):  # and keeps ticking
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert json.loads(line)["charged_minutes"] == 0
        assert proc.returncode is None
    finally:
        proc.terminate()
        await proc.wait()


async def test_payouts_run_settles_the_rest_and_reports_a_failure(
    database: Database, db_dsn: str, settings: Settings
) -> None:
    admin = await create_user(database, settings, "admin")
    service = PayoutService(database, SystemClock(), settings.billing)
    ids = []
    for _ in range(2):
        consultant = await create_user(database, settings, "consultant")
        async with database.pool.acquire() as conn, conn.transaction():
            earn = await ledger.ensure_account(conn, AccountKind.EARNINGS, consultant.id)
            await ledger.post(
                conn,
                Transfer.build(
                    f"bonus:{consultant.id}", "bonus", [(PROMOTIONS, -200_000), (earn, 200_000)]
                ),
            )
        p = await service.request(consultant.id, 150_000)
        await service.decide(p.id, admin.id, approve=True)
        ids.append(p.id)
    # The first payout's transfer cannot be written (a stand-in for any database-side failure).
    await database.pool.execute(
        f"""CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN IF NEW.idempotency_key = 'payout:{ids[0]}' THEN
                RAISE EXCEPTION 'refused by test'; END IF; RETURN NEW; END $$;
            CREATE TRIGGER refuse BEFORE INSERT ON ledger_transfers
                FOR EACH ROW EXECUTE FUNCTION refuse();"""
    )
    code, out, err = await kundlinow(db_dsn, "payouts", "run")
    assert code == 2, err
    states = {json.loads(line)["id"]: json.loads(line)["state"] for line in out.splitlines()}
    # The bank took the first one: it stays approved with its hold, to be posted next time.
    assert states == {str(ids[0]): "approved", str(ids[1]): "posted"}
    reason = await database.pool.fetchval(
        "SELECT failure_reason FROM payouts WHERE id = $1", ids[0]
    )
    assert "but not posted" in reason and "refused by test" in reason
    await database.pool.execute("DROP TRIGGER refuse ON ledger_transfers")
    code, out, err = await kundlinow(db_dsn, "payouts", "run")
    assert code == 0, err
    assert [json.loads(line)["state"] for line in out.splitlines()] == ["posted"]
    assert check_all(await load_snapshot(database.pool)) == []
