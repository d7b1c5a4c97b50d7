"""The tasks an object starts and owns: each one logged if it fails, all cancelled and awaited
when the owner closes (no task that nobody keeps)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

log = structlog.get_logger(__name__)


class TaskSet:
    """A supervisor for one owner's background tasks."""

    def __init__(self, failed_event: str) -> None:
        self._failed_event = failed_event
        """Logged (with the traceback) when a task ends with an exception."""
        self._tasks: set[asyncio.Future[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, work: Awaitable[Any], *, name: str | None = None) -> None:
        task = asyncio.ensure_future(work)
        if name is not None and isinstance(task, asyncio.Task):
            task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            name = task.get_name() if isinstance(task, asyncio.Task) else repr(task)
            log.error(self._failed_event, task=name, exc_info=task.exception())

    def cancel(self) -> None:
        """Cancel every task without waiting (from synchronous teardown)."""
        for task in self._tasks:
            task.cancel()

    async def close(self) -> None:
        """Cancel every task and wait until all have finished (a task closing its own owner
        is not waited for: it would wait for itself)."""
        self.cancel()
        current = asyncio.current_task()
        await asyncio.gather(
            *(t for t in list(self._tasks) if t is not current), return_exceptions=True
        )


def stop_if_cancelled() -> None:
    """Raise ``CancelledError`` if the current task has been asked to stop.

    For loops that catch ``Exception`` around an await and carry on: a cancellation that
    arrives during that await can come back as another error (a client library's timeout or
    connection handling can turn it into one) or not at all, and the loop would then run for
    ever while its owner's ``close`` awaits it. Call it in the ``except`` clause and at the
    end of each round."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def every(
    interval_s: float, action: Callable[[], Awaitable[None]], *, failed_event: str
) -> None:
    """Run ``action`` every ``interval_s`` seconds until cancelled (heartbeats, claim refreshes,
    watchdogs); a failed run is logged as ``failed_event`` and the next one happens on time.

    A cancellation that arrives while ``action`` runs ends the loop even if something inside
    the action turned it into an error or swallowed it (a client library's timeout handling
    can; so can Python 3.11's ``wait_for`` when its inner task finishes at the same moment).
    Without this check the loop went on sleeping and acting for ever, and whoever awaited the
    cancelled task — a node's shutdown — waited with it."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await action()
        except Exception:
            stop_if_cancelled()
            log.warning(failed_event, exc_info=True)
        stop_if_cancelled()
