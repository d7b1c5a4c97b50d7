"""``kundlinow recordings compose|worker|prune|recover`` (registered in kundlinow.cli)."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from kundlinow.config import Settings
from kundlinow.database import open_database
from recording import retention
from recording.backends import open_store
from recording.catalog import Catalog
from recording.recorder import recover
from recording.review import compose_one, compose_pending
from recording.store import RecordingStore

_AGE = re.compile(r"^(\d+)([dhm])$")


def parse_age(raw: str) -> dt.timedelta:
    """``30d``, ``12h`` or ``90m``."""
    match = _AGE.match(raw.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"age must look like 30d, 12h or 90m, got {raw!r}")
    unit = {"d": "days", "h": "hours", "m": "minutes"}[match[2]]
    return dt.timedelta(**{unit: int(match[1])})


@asynccontextmanager
async def _parts(settings: Settings) -> AsyncIterator[tuple[RecordingStore, Catalog]]:
    async with open_database(settings, migrate=False) as database:
        yield open_store(settings.recording), Catalog(database.pool)


def _run(settings: Settings, job: Callable[[RecordingStore, Catalog], Awaitable[Any]]) -> int:
    async def run() -> None:
        async with _parts(settings) as (store, catalog):
            result = await job(store, catalog)
            print(json.dumps(result, sort_keys=True), flush=True)

    asyncio.run(run())
    return 0


def _compose(settings: Settings, args: argparse.Namespace) -> int:
    async def job(store: RecordingStore, catalog: Catalog) -> dict[str, Any]:
        if args.consultation is None:
            return {"composed": await compose_pending(store, catalog)}
        result = await compose_one(store, catalog, args.consultation)
        return {"composed": 0 if result is None else 1}

    return _run(settings, job)


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    os.nice(args.nice)  # below the live server's priority when they share a machine

    async def job(store: RecordingStore, catalog: Catalog) -> None:
        while True:
            await compose_pending(store, catalog)
            await asyncio.sleep(args.interval)

    return _run(settings, job)


def _prune(settings: Settings, args: argparse.Namespace) -> int:
    async def job(store: RecordingStore, catalog: Catalog) -> dict[str, Any]:
        now = dt.datetime.now(dt.UTC)
        return {"deleted": await retention.prune(store, catalog, args.older_than, now)}

    return _run(settings, job)


def _recover(settings: Settings, args: argparse.Namespace) -> int:
    async def job(store: RecordingStore, catalog: Catalog) -> dict[str, Any]:
        results = await recover(store, catalog)
        return {"recovered": [r.key for r in results]}

    return _run(settings, job)


def register(commands: Any) -> None:
    rec = commands.add_parser("recordings", help="review files, retention, crash recovery")
    sub = rec.add_subparsers(dest="recordings_command", required=True)
    compose = sub.add_parser("compose", help="compose review MP4s (one, or all pending)")
    compose.add_argument("--consultation", type=uuid.UUID, default=None)
    compose.set_defaults(func=_compose)
    worker = sub.add_parser("worker", help="compose pending review files, forever")
    worker.add_argument("--interval", type=float, default=60.0, help="seconds between passes")
    worker.add_argument("--nice", type=int, default=10, help="added to the process niceness")
    worker.set_defaults(func=_worker)
    prune = sub.add_parser("prune", help="delete recordings older than an age (for cron)")
    prune.add_argument("--older-than", type=parse_age, required=True, help="e.g. 30d")
    prune.set_defaults(func=_prune)
    sub.add_parser("recover", help="finalise files a crash left open").set_defaults(
        func=_recover
    )
