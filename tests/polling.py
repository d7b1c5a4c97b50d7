"""Waiting for a condition in tests: poll it until it holds or a generous deadline passes.

The machine running the suite may be busy (two cores shared with other work), so a test never
sleeps a fixed time and hopes: it states what it waits for, and the deadline only bounds how
long a failing test takes to say so.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

Predicate = Callable[[], bool | Awaitable[bool]]

DEADLINE_S = 60.0
"""Default deadline: far above what a loaded machine needs (20 s was seen to be too short with
both cores busy and other suites running), short enough to fail usefully."""


async def eventually(
    predicate: Predicate, within_s: float = DEADLINE_S, step: float = 0.02
) -> bool:
    """Whether ``predicate`` (a function or a coroutine function) holds within ``within_s``.

    Checked at once, then every ``step`` seconds, and a last time at the deadline; the caller
    asserts the result with a message saying what was seen.
    """
    deadline = time.monotonic() + within_s
    while True:
        outcome = predicate()
        held = await outcome if inspect.isawaitable(outcome) else outcome
        if held:
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(min(step, max(0.0, deadline - time.monotonic())))
