"""Run a module under cProfile timed in process CPU seconds: ``python -m bench.cpu_profile OUT
module [args...]`` writes ``OUT`` (``pstats``) when the module returns.

``python -m cProfile`` times functions by wall clock; on a shared machine a descheduled process
(a loopback ``send`` that wakes PostgreSQL and is preempted by it) then shows as time spent in
that call. ``time.process_time`` counts only what this process ran.
"""

from __future__ import annotations

import cProfile
import runpy
import sys
import time


def main() -> None:
    out, module, *args = sys.argv[1:]
    sys.argv = [module, *args]
    profile = cProfile.Profile(time.process_time)
    try:
        profile.runcall(runpy.run_module, module, run_name="__main__", alter_sys=True)
    except SystemExit:
        pass
    finally:
        profile.dump_stats(out)


if __name__ == "__main__":
    main()
