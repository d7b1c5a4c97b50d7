"""The hub's lifecycle timers (request timeout, reconnect grace, waitlist offers) and the tasks
they start; every task is kept, logged if it fails, and cancelled and awaited in ``close()``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Hashable
from typing import Any

from core.tasks import TaskSet


class Timers:
    """Keyed one-shot timers: scheduling a key again replaces its timer."""

    def __init__(self) -> None:
        self._handles: dict[Hashable, asyncio.TimerHandle] = {}
        self._tasks = TaskSet("signalling_task_failed")

    def schedule(
        self, key: Hashable, delay: float, make: Callable[[], Coroutine[Any, Any, Any]]
    ) -> None:
        self.cancel(key)

        def fire() -> None:
            self._handles.pop(key, None)
            self._tasks.spawn(make(), name=f"timer:{key}")

        self._handles[key] = asyncio.get_running_loop().call_later(delay, fire)

    def cancel(self, key: Hashable) -> None:
        handle = self._handles.pop(key, None)
        if handle is not None:
            handle.cancel()

    def has(self, key: Hashable) -> bool:
        return key in self._handles

    async def close(self) -> None:
        for handle in self._handles.values():
            handle.cancel()
        self._handles.clear()
        await self._tasks.close()
