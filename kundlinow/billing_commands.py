"""`kundlinow billing tick|run|check` and `kundlinow payouts run` (registered in kundlinow.cli).

`billing tick` is one idempotent pass meant for cron every minute; any number may run at once
(they split the due consultations with FOR UPDATE SKIP LOCKED and the UNIQUE (consultation,
minute) key charges each minute once). Events reach the signalling nodes through Redis when
REDIS_URL is set.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from billing.audit import load_snapshot
from billing.consultations import ConsultationService
from billing.invariants import check_all
from billing.payouts import PayoutService, SimulatedBankRail
from core.bus import EventBus, LocalBus, RedisBus
from core.clock import SystemClock
from core.db import Database
from kundlinow.config import Settings
from kundlinow.database import open_database


@asynccontextmanager
async def _service(settings: Settings) -> AsyncIterator[tuple[Database, ConsultationService]]:
    bus: EventBus = (
        RedisBus.from_url(settings.redis_url, settings.redis_prefix)
        if settings.redis_url
        else LocalBus()
    )
    try:
        async with open_database(settings, migrate=False) as database:
            yield database, ConsultationService(database, bus, SystemClock(), settings.billing)
    finally:
        await bus.close()


def _print(data: dict[str, Any]) -> None:
    print(json.dumps(data, sort_keys=True), flush=True)


def _tick(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> None:
        async with _service(settings) as (_, service):
            _print((await service.tick(batch=args.batch_size)).to_json())

    asyncio.run(run())
    return 0


def _run(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> None:
        async with _service(settings) as (_, service):
            while True:
                _print((await service.tick()).to_json())
                await asyncio.sleep(args.interval)

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    return 0


def _check(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> list[str]:
        async with open_database(settings, migrate=False) as database:
            return check_all(await load_snapshot(database.pool))

    problems = asyncio.run(run())
    for p in problems:
        print(p)
    print("ledger ok" if not problems else f"{len(problems)} violation(s)")
    return 0 if not problems else 1


def _payouts_run(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> None:
        async with open_database(settings, migrate=False) as database:
            service = PayoutService(database, SystemClock(), settings.billing)
            for payout in await service.run(SimulatedBankRail()):
                _print(payout.to_json())

    asyncio.run(run())
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    billing = commands.add_parser("billing", help="per-minute billing jobs")
    sub = billing.add_subparsers(dest="billing_command", required=True)
    tick = sub.add_parser("tick", help="charge every due minute once (cron, idempotent)")
    tick.add_argument(
        "--batch-size", type=int, default=None, help="consultations per transaction (default 10000)"
    )
    tick.set_defaults(func=_tick)
    run = sub.add_parser("run", help="tick in a loop")
    run.add_argument("--interval", type=float, default=5.0, help="seconds between ticks")
    run.set_defaults(func=_run)
    sub.add_parser("check", help="verify the ledger invariants").set_defaults(func=_check)
    payouts = commands.add_parser("payouts", help="consultant payouts")
    psub = payouts.add_subparsers(dest="payouts_command", required=True)
    psub.add_parser("run", help="settle approved payouts (pending -> posted/voided)").set_defaults(
        func=_payouts_run
    )
