"""The narrow interfaces billing needs from the composition root (core.db/bus/clock)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

import asyncpg


class HasPool(Protocol):
    """`core.db.Database` (anything with an asyncpg pool)."""

    @property
    def pool(self) -> asyncpg.Pool: ...


class Publisher(Protocol):
    """The publishing half of `core.bus.EventBus`."""

    async def publish(self, topic: str, event: dict[str, Any]) -> None: ...


class Clock(Protocol):
    """`core.clock.Clock`: aware UTC now."""

    def now(self) -> datetime: ...
