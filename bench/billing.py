"""Billing tick throughput: ONE `ConsultationService.tick()` over N live consultations.

Creates a scratch database on a real PostgreSQL (`--database-url`, default the local server),
migrates it, seeds N active consultations (N callers with funded wallets, N consultants) with
`bench.loadgen`, then times one tick that charges every due minute (`--minutes` due per
consultation: 1 = the steady state of a cron tick, more = catching up after downtime). The
invariants of billing.invariants are checked afterwards, so a fast but wrong tick fails loudly.
Besides wall time it reports the CPU the tick cost: this database's PostgreSQL backends (psutil)
and this Python process; on a shared machine those, not the wall time, compare two versions.
As a reference for the same PostgreSQL, `pgbench` (TPC-B-like, `-c 4 -j 2`) runs on the same
scratch database. Prints one table.

    .venv/bin/python -m bench.billing --consultations 10000
    .venv/bin/python -m bench.billing --consultations 10000 --workers 2 --batch 5000
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import os
import re
import secrets
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import psutil

from bench.loadgen import seed_live_consultations
from billing.audit import load_snapshot
from billing.config import BillingSettings
from billing.consultations import ConsultationService
from billing.invariants import check_active_caught_up, check_all
from core.bus import LocalBus
from core.clock import SystemClock
from core.db import Database
from kundlinow.database import migrations

LOCAL = "postgresql://postgres@127.0.0.1:5432/postgres"


def with_db(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path="/" + name))


def pgbench_binary() -> str | None:
    found = shutil.which("pgbench")
    if found:
        return found
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pgbench"))
    return candidates[-1] if candidates else None


def run_pgbench(dsn: str, seconds: int) -> str:
    binary = pgbench_binary()
    if binary is None:
        return "pgbench not found (install postgresql-contrib)"
    parts = urlsplit(dsn)
    env = {
        **os.environ,
        "PGHOST": parts.hostname or "127.0.0.1",
        "PGPORT": str(parts.port or 5432),
        "PGUSER": parts.username or "postgres",
        "PGDATABASE": parts.path.lstrip("/"),
    }
    if parts.password:
        env["PGPASSWORD"] = parts.password
    subprocess.run([binary, "-i", "-q", "-s", "10"], env=env, check=True, capture_output=True)
    out = subprocess.run(
        [binary, "-c", "4", "-j", "2", "-T", str(seconds)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    match = re.search(r"tps = ([\d.]+)", out)
    return f"{float(match.group(1)):.0f} TPS" if match else out


async def backend_cpu(db: Database, name: str) -> float:
    """CPU seconds used so far by this database's server processes (same host only): on a
    shared machine wall time mostly measures the neighbours, CPU time measures the tick."""
    pids = await db.pool.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend'",
        name,
    )
    total = 0.0
    for r in pids:
        try:
            t = psutil.Process(r["pid"]).cpu_times()
        except (psutil.Error, OSError):
            continue
        total += t.user + t.system
    return total


async def main(args: argparse.Namespace) -> None:
    name = f"kn_bench_{secrets.token_hex(4)}"
    load = os.getloadavg()[0]
    admin = await asyncpg.connect(args.database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = with_db(args.database_url, name)
    rows: list[tuple[str, str]] = []
    try:
        db = await Database.connect(dsn, min_size=1, max_size=4, migrations=migrations())
        try:
            await db.migrate()
            started = datetime.now(UTC) - timedelta(
                seconds=args.minute_seconds * (args.minutes - 1) + args.minute_seconds // 2
            )
            t0 = time.perf_counter()
            async with db.pool.acquire() as conn:
                await seed_live_consultations(
                    conn,
                    args.consultations,
                    started_at=started,
                    funds_paise=1_000_000,
                    minute_seconds=args.minute_seconds,
                )
            seed_s = time.perf_counter() - t0
            service = ConsultationService(
                db, LocalBus(), SystemClock(), BillingSettings(minute_seconds=args.minute_seconds)
            )
            await db.pool.execute("VACUUM ANALYZE")  # steady state: hint bits set, stats fresh
            first_at = datetime.now(UTC)
            for minute in range(args.ticks):  # the last one is measured
                tick_at = first_at + timedelta(seconds=minute * args.minute_seconds)
                cpu0 = await backend_cpu(db, name)
                client0 = time.process_time()
                t0 = time.perf_counter()
                report = await service.tick(tick_at, batch=args.batch, workers=args.workers)
                tick_s = time.perf_counter() - t0
                client_s = time.process_time() - client0
                cpu_s = await backend_cpu(db, name) - cpu0
            t1 = time.perf_counter()
            empty = await service.tick(tick_at)
            idle_s = time.perf_counter() - t1
            snapshot = await load_snapshot(db.pool)
            problems = check_all(snapshot) + check_active_caught_up(snapshot.consultations, tick_at)
            expected = args.consultations * (args.minutes if args.ticks == 1 else 1)
            rows += [
                ("live consultations", f"{args.consultations:,}"),
                ("minutes due each", str(args.minutes)),
                ("tick workers x batch", f"{args.workers} x {args.batch:,}"),
                ("seed time", f"{seed_s:.2f} s"),
                ("measured tick", f"{args.ticks} of {args.ticks}, one minute apart"),
                ("charges in the tick", f"{report.charged_minutes:,} (expected {expected:,})"),
                ("tick wall time", f"{tick_s:.3f} s"),
                ("charges/s (wall)", f"{report.charged_minutes / tick_s:,.0f}"),
                ("PostgreSQL backend CPU for the tick", f"{cpu_s:.2f} s"),
                (
                    "charges per backend CPU-second",
                    f"{report.charged_minutes / cpu_s:,.0f}" if cpu_s else "n/a",
                ),
                ("client (this Python process) CPU for the tick", f"{client_s:.2f} s"),
                ("load average (1 min) at start", f"{load:.1f} on {os.cpu_count()} cores"),
                (
                    "next tick (nothing due)",
                    f"{idle_s * 1000:.1f} ms, {empty.charged_minutes} charges",
                ),
                ("ledger invariants", "ok" if not problems else f"{len(problems)} violations"),
            ]
        finally:
            await db.close()
        if args.pgbench_seconds:
            rows.append(
                (
                    "pgbench -c 4 -j 2 -s 10 (same PostgreSQL)",
                    run_pgbench(dsn, args.pgbench_seconds),
                )
            )
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    width = max(len(k) for k, _ in rows)
    print(f"{'metric'.ljust(width)} | value")
    print(f"{'-' * width}-+-{'-' * 30}")
    for k, v in rows:
        print(f"{k.ljust(width)} | {v}")


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", LOCAL),
        help="admin DSN of the PostgreSQL server (a scratch database is created)",
    )
    p.add_argument("--consultations", type=int, default=10_000)
    p.add_argument("--minutes", type=int, default=1, help="minutes due per consultation")
    p.add_argument("--minute-seconds", type=int, default=60)
    p.add_argument(
        "--ticks",
        type=int,
        default=1,
        help="ticks one minute apart, the last one measured (>1: the steady state of a running "
        "server: reused connections and query plans, pages holding the last tick's rows)",
    )
    p.add_argument("--workers", type=int, default=1, help="parallel tick workers")
    p.add_argument("--batch", type=int, default=10_000, help="consultations per statement")
    p.add_argument("--pgbench-seconds", type=int, default=10, help="0 skips pgbench")
    return p.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))
