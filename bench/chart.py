"""Charts per second per core: ``astrology.compute_chart`` on seeded random births 1900–2050.

One process, one thread, pinned to one CPU when the OS allows it. Each scenario computes the
same births; the rate divides the count by the process CPU time (what one core delivers, however
loaded the machine) and, for reference, by the wall time. The ephemeris and the gazetteer are
loaded before timing starts.

    .venv/bin/python -m bench.chart --charts 2000
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime

from astrology.chart import BirthMoment, compute_chart
from astrology.ephemeris import default_ephemeris
from astrology.report import chart_to_json
from astrology.svg import render


def births(count: int, seed: int) -> list[BirthMoment]:
    rng = random.Random(seed)
    first = datetime(1900, 1, 1, tzinfo=UTC).timestamp()
    last = datetime(2050, 12, 31, tzinfo=UTC).timestamp()
    return [
        BirthMoment(
            datetime.fromtimestamp(rng.uniform(first, last), UTC),
            rng.uniform(-66.0, 66.0),
            rng.uniform(-180.0, 180.0),
        )
        for _ in range(count)
    ]


SCENARIOS: dict[str, Callable[[BirthMoment], object]] = {
    "chart": compute_chart,
    "chart + JSON": lambda m: chart_to_json(compute_chart(m)),
    "chart + JSON + 2 SVGs": lambda m: (
        chart_to_json(chart := compute_chart(m)),
        render(chart, "north"),
        render(chart, "south"),
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--charts", type=int, default=2000, help="births per scenario")
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    default_ephemeris()
    sample = births(args.charts, args.seed)
    compute_chart(sample[0])  # warm caches (precession tables, numpy paths)
    load = os.getloadavg()[0]
    print(f"{args.charts} births 1900-2050, seed {args.seed}, load average {load:.1f}")
    print("| scenario | charts | CPU s | wall s | charts/s per core (CPU) | charts/s (wall) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, work in SCENARIOS.items():
        cpu, wall = time.process_time(), time.perf_counter()
        for moment in sample:
            work(moment)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        print(
            f"| {name} | {len(sample)} | {cpu:.2f} | {wall:.2f} | "
            f"{len(sample) / cpu:.0f} | {len(sample) / wall:.0f} |"
        )


if __name__ == "__main__":
    main()
