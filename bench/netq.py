"""Issue 16's table: a video consult through the web app between two headless Chromium
instances in network namespaces of their own, with shaped links (``tests/media/netq.py``,
``tests/media/netns.py``), measured caller → astrologer over each run.

Needs root (namespaces, TUN devices, ``tc``), chromium and PostgreSQL; makes a scratch
database on ``--database-url`` (default the local server) and drops it afterwards.

    .venv/bin/python -m bench.netq [--seconds 45] [--cases clean,down400,...]
        [--congestion-control on|off] [--check] [--janus] [--trace DIR]

``--congestion-control`` sets ``MEDIA_CONGESTION_CONTROL`` of the server under test (default:
its default, off).

``--check`` is issue 16's acceptance in one command: each row is judged against the issue's
thresholds (``ACCEPTANCE``, also the table's last column), one ``FAIL`` line is printed per
threshold missed, and the exit status is 1 if any was.

``--janus`` runs each case a second time, right after, with both parties in a videoroom of
Janus (``bench.netq_janus``): issue 16's comparison, on the same links and machine load. Its
rows are not judged.

``--trace DIR`` writes each case's samples (once a second: both browsers' ``getStats``
figures, among them the caller's ``availableOutgoingBitrate`` and encoder target, and the
SFU's admin media stats with the estimates and the retransmission counters) to
``DIR/<n>-<case>.jsonl`` (the n-th case run; the directory is created), to see *when* a
freeze happened and what the estimates did around it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from playwright.async_api import async_playwright

from bench.netq_janus import run_janus_case
from core.db import Database
from core.logconfig import configure_logging
from kundlinow.config import Settings
from kundlinow.database import migrations
from media.config import MediaSettings
from media.congestion import CongestionSettings
from recording.config import RecordingSettings
from tests.media.netns import LinkShape
from tests.media.netq import Case, Result, run_case

LOCAL = "postgresql://postgres@127.0.0.1:5432/postgres"


def cases(seconds: float) -> dict[str, Case]:
    return {
        "clean": Case("clean", seconds=seconds),
        "down400": Case(
            "astrologer's downlink 400 kbit/s", astrologer=LinkShape(down_kbps=400), seconds=seconds
        ),
        "down120": Case(
            "astrologer's downlink 120 kbit/s, then lifted",
            astrologer=LinkShape(down_kbps=120),
            seconds=seconds,
            lift=True,
        ),
        "up400": Case("caller's uplink 400 kbit/s", caller=LinkShape(up_kbps=400), seconds=seconds),
        "loss3": Case(
            "astrologer's link 3 % loss, 150 ms RTT",
            astrologer=LinkShape(loss=0.03, one_way_delay_s=0.075),
            seconds=seconds,
        ),
    }


@dataclass(frozen=True)
class Threshold:
    """One of issue 16's acceptance thresholds on a run's ``Result``."""

    label: str
    measure: Callable[[Result], float]
    at_most: bool
    """``measure`` ≤ ``limit`` (else ≥)."""
    limit: float
    per_45_s: bool = False
    """The limit is per 45 s of run (frozen time): scaled to the run's length."""

    def failure(self, result: Result, seconds: float) -> str | None:
        """What missed this threshold, or None."""
        limit = self.limit * seconds / 45 if self.per_45_s else self.limit
        value = self.measure(result)
        held = value <= limit if self.at_most else value >= limit
        return (
            None if held else f"{self.label} {value:.1f} {'>' if self.at_most else '<'} {limit:.1f}"
        )


def _frozen(limit_s: float) -> Threshold:
    return Threshold("frozen s", lambda r: r.frozen_s, True, limit_s, per_45_s=True)


def _resumed(result: Result) -> float:
    return float("inf") if result.resumed_s is None else result.resumed_s


AUDIO_CONCEALED = Threshold("audio concealed %", lambda r: r.concealed_pct, True, 2.0)
ACCEPTANCE: dict[str, tuple[Threshold, ...]] = {
    # "unchanged" includes the bitrate: a clean link carries the caller's 1.2–1.3 Mbit/s here,
    # and an estimate stuck low holds 30 fps at a fraction of it (85 kbit/s seen)
    "clean": (
        Threshold("astrologer fps", lambda r: r.fps, False, 25.0),
        _frozen(2.0),
        Threshold("caller sends kbit/s", lambda r: r.caller_kbps, False, 800.0),
    ),
    "down400": (
        Threshold("caller sends kbit/s", lambda r: r.caller_kbps, True, 350.0),
        Threshold("astrologer fps", lambda r: r.fps, False, 15.0),
        _frozen(2.0),
        AUDIO_CONCEALED,
        Threshold("SFU rtx/forwarded %", lambda r: r.retransmitted_pct, True, 30.0),
    ),
    "down120": (
        Threshold("paused shown", lambda r: float(r.paused_seen), False, 1.0),
        AUDIO_CONCEALED,
        Threshold("resumed after lift s", _resumed, True, 5.0),
    ),
    "up400": (
        _frozen(2.0),
        Threshold("jitter buffer ms", lambda r: r.jitter_buffer_ms, True, 300.0),
    ),
    "loss3": (_frozen(1.0),),
}
"""Issue 16's acceptance per case (frozen time per 45 s of run)."""


def failures(key: str, result: Result, seconds: float) -> list[str]:
    found = (threshold.failure(result, seconds) for threshold in ACCEPTANCE[key])
    return [failure for failure in found if failure is not None]


def row(result: Result, missed: list[str]) -> str:
    """One table row; a comparison run (Janus) is not judged and has no SFU counters."""
    resumed = "–" if result.resumed_s is None else f"{result.resumed_s:.1f} s"
    ours = result.server == "kundlinow"
    retransmitted = (
        f"{result.retransmitted}/{result.forwarded} ({result.retransmitted_pct:.0f} %)"
        if ours else "–"
    )
    judged = ("; ".join(missed) or "met") if ours else "not judged"
    return (
        f"| {result.server} | {result.case} | {result.caller_kbps:.0f} | {result.sent_fps:.1f} | "
        f"{result.fps:.1f} | {result.freezes} | "
        f"{result.frozen_s:.1f} | {result.jitter_buffer_ms:.0f} | {result.concealed_pct:.1f} | "
        f"{retransmitted} | {'yes' if result.paused_seen else 'no'} | {resumed} | {judged} |"
    )


HEADER = (
    "| SFU | link | caller sends kbit/s (after 10 s) | caller sends fps | astrologer fps | "
    "freezes | frozen s | "
    "jitter buffer ms | audio concealed % | SFU rtx/forwarded video | paused shown | "
    "resumed after lift | issue 16 acceptance |\n" + "|---" * 13 + "|"
)


async def main(args: argparse.Namespace) -> list[str]:
    """Runs the cases, prints the table; the thresholds missed, as ``FAIL`` lines."""
    # a SIGTERM (timeout, kill) cancels the run, so that the namespaces, devices, the
    # server's address on lo and the scratch database are removed as after a failure
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    configure_logging("console", "WARNING")
    name = f"kn_bench_netq_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(args.database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = urlunsplit(urlsplit(args.database_url)._replace(path="/" + name))
    try:
        db = await Database.connect(dsn, min_size=1, max_size=10, migrations=migrations())
        try:
            await db.migrate()
            with tempfile.TemporaryDirectory(prefix="netq-rec-") as tmp:
                settings = Settings(
                    env="test",
                    database_url=dsn,
                    jwt_secret=secrets.token_hex(32),
                    log_format="console",
                    log_level="WARNING",
                    recording=RecordingSettings(directory=Path(tmp)),
                    media=MediaSettings(
                        congestion=CongestionSettings(enabled=args.congestion_control == "on")
                    ),
                )
                print(
                    f"load average {os.getloadavg()[0]:.1f}; {args.seconds:.0f} s per run; "
                    f"congestion control {args.congestion_control}"
                )
                print(HEADER, flush=True)
                all_cases = cases(args.seconds)
                missed: list[str] = []
                if args.trace:
                    args.trace.mkdir(parents=True, exist_ok=True)
                async with async_playwright() as playwright:
                    for n, key in enumerate(args.cases.split(","), 1):
                        # numbered: a case given twice (repeat runs) keeps both traces
                        trace = args.trace / f"{n}-{key}.jsonl" if args.trace else None
                        result = await run_case(playwright, settings, db, all_cases[key], trace)
                        found = failures(key, result, args.seconds)
                        print(row(result, found), flush=True)
                        missed += [f"FAIL {result.case}: {failure}" for failure in found]
                        if args.janus:  # the comparison, right after: same links, same load
                            janus_trace = (
                                args.trace / f"{n}-{key}-janus.jsonl" if args.trace else None
                            )
                            result = await run_janus_case(playwright, all_cases[key], janus_trace)
                            print(row(result, []), flush=True)
                return missed
        finally:
            await db.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=LOCAL)
    parser.add_argument("--seconds", type=float, default=45.0)
    parser.add_argument("--cases", default="clean,down400,down120,up400,loss3")
    parser.add_argument("--congestion-control", choices=("on", "off"), default="off")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if any of issue 16's thresholds is missed"
    )
    parser.add_argument(
        "--janus", action="store_true",
        help="after each case, the same links with both parties on Janus' videoroom",
    )
    parser.add_argument(
        "--trace", type=Path,
        help="a directory (created): every sample of the n-th case as <n>-<case>.jsonl",
    )
    arguments = parser.parse_args()
    try:
        missed = asyncio.run(main(arguments))
    except asyncio.CancelledError:
        sys.exit(128 + signal.SIGTERM)
    if arguments.check:
        print("\n".join(missed) or "issue 16 acceptance: all thresholds met")
        sys.exit(1 if missed else 0)
