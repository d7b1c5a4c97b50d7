"""`kundlinow billing tick|run|check` and `kundlinow payouts run` (registered in kundlinow.cli).

`billing tick` is one idempotent pass meant for cron every minute; any number may run at once
(they split the due consultations with FOR UPDATE SKIP LOCKED and the UNIQUE (consultation,
minute) key charges each minute once). Events reach the signalling nodes through Redis when
REDIS_URL is set.

Nothing scrapes a cron job: each tick prints its report as one JSON line (the job's log), and
with ``--metrics-file`` the tick series of ``billing.metrics`` are written there too, in the text
format node_exporter's textfile collector reads (replaced atomically after every tick).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, write_to_textfile

from billing.audit import load_snapshot
from billing.consultations import ConsultationService
from billing.invariants import check_all
from billing.lifecycle import TickReport
from billing.metrics import TickMetrics
from billing.payouts import Payout, PayoutService, SimulatedBankRail
from core.bus import EventBus, LocalBus, RedisBus
from core.clock import SystemClock
from core.db import Database, is_connection_lost
from core.tracing import Tracing
from kundlinow.config import Settings
from kundlinow.database import open_database

log = structlog.get_logger(__name__)


@asynccontextmanager
async def _service(settings: Settings) -> AsyncIterator[tuple[Database, ConsultationService]]:
    bus: EventBus = (
        RedisBus.from_url(settings.redis_url, settings.redis_prefix)
        if settings.redis_url
        else LocalBus()
    )
    # A CronJob's tick is traced like the server's (the spans are flushed before it exits).
    tracing = Tracing(settings.tracing, settings.node_id)
    tracing.start()
    try:
        async with open_database(settings, migrate=False) as database:
            yield database, ConsultationService(
                database, bus, SystemClock(), settings.billing, tracer=tracing.tracer
            )
    finally:
        await bus.close()
        await asyncio.to_thread(tracing.close)


def _print(data: dict[str, Any]) -> None:
    print(json.dumps(data, sort_keys=True), flush=True)


async def _tick_once(service: ConsultationService, batch: int | None, retries: int) -> TickReport:
    """One tick; a tick cut off by a lost database connection is tried again (ticks are
    idempotent and the lost transaction was rolled back)."""
    attempt = 0
    while True:
        try:
            return await service.tick(batch=batch)
        except Exception as exc:
            if attempt >= retries or not is_connection_lost(exc):
                raise
            attempt += 1
            log.warning("billing_tick_connection_lost", attempt=attempt, error=str(exc))


class _TickFile:
    """The tick series of this process, written to ``path`` after each tick (when given)."""

    def __init__(self, settings: Settings, path: str | None) -> None:
        self._path = path
        self._registry = CollectorRegistry()
        self._metrics = TickMetrics(self._registry, settings.node_id or socket.gethostname())

    async def tick(self, service: ConsultationService, batch: int | None) -> TickReport:
        try:
            report = await _tick_once(service, batch, retries=1)
        except Exception:
            self._metrics.failed()
            self._write()
            raise
        self._metrics.observe(report)
        self._write()
        _print(report.to_json())
        return report

    def _write(self) -> None:
        if self._path is not None:
            write_to_textfile(self._path, self._registry)


def _tick(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> None:
        async with _service(settings) as (_, service):
            await _TickFile(settings, args.metrics_file).tick(service, args.batch_size)

    asyncio.run(run())
    return 0


def _run(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> None:
        ticks = _TickFile(settings, args.metrics_file)
        async with _service(settings) as (_, service):
            while True:
                try:
                    await ticks.tick(service, None)
                except Exception as exc:
                    if not is_connection_lost(exc):
                        raise
                    log.warning("billing_tick_skipped", error=str(exc))  # the next one catches up
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


PARTIAL_FAILURE = 2
"""`payouts run` exit code when some payout failed (the others were settled)."""


def _payouts_run(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> list[Payout]:
        async with open_database(settings, migrate=False) as database:
            service = PayoutService(database, SystemClock(), settings.billing)
            return await service.run(SimulatedBankRail())

    settled = asyncio.run(run())
    for payout in settled:
        _print(payout.to_json())
    # failed, or sent but not posted (still approved: the next run posts it)
    return PARTIAL_FAILURE if any(p.state in ("failed", "approved") for p in settled) else 0


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
    for command in (tick, run):
        command.add_argument(
            "--metrics-file", default=None,
            help="write the tick metrics here (Prometheus text format, node_exporter textfile)",
        )
    run.set_defaults(func=_run)
    sub.add_parser("check", help="verify the ledger invariants").set_defaults(func=_check)
    payouts = commands.add_parser("payouts", help="consultant payouts")
    psub = payouts.add_subparsers(dest="payouts_command", required=True)
    psub.add_parser(
        "run", help="settle approved payouts (posted/voided; exit 2 when some failed)"
    ).set_defaults(func=_payouts_run)
