"""``kill -USR1 <pid>`` writes where a process is: every thread's Python stack and every
asyncio task's await chain, to stderr (the node's log).

For a process that will not answer or will not exit (a shutdown waiting on something, a
stuck request), this tells what it waits on without stopping it; ``py-spy`` shows threads
only, not the coroutines suspended in the event loop, which is where a hang in this service
usually is.
"""

from __future__ import annotations

import asyncio
import faulthandler
import signal
import sys
from types import FrameType

DUMP_SIGNAL = signal.SIGUSR1
END_MARKER = "stack dump end"
"""The dump's last line: a reader polling the log knows the dump is complete."""


def install() -> None:
    """Dump on :data:`DUMP_SIGNAL` from now on (call from the main thread)."""
    signal.signal(DUMP_SIGNAL, _dump)


def _dump(_signum: int, _frame: FrameType | None) -> None:
    # A Python-level handler (not faulthandler.register): it runs in the main thread between
    # bytecodes, where the running loop's tasks can be walked; thread stacks come from
    # faulthandler either way.
    out = sys.stderr
    print("stack dump: threads", file=out, flush=True)
    faulthandler.dump_traceback(file=out, all_threads=True)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # between loops (start-up, interpreter exit): threads only
        loop = None
    if loop is not None:
        tasks = asyncio.all_tasks(loop)
        print(f"stack dump: {len(tasks)} asyncio tasks", file=out)
        for task in tasks:
            task.print_stack(limit=12, file=out)
    print(END_MARKER, file=out, flush=True)
