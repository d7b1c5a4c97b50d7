"""The narrow interfaces billing needs from the composition root (kundlinow.db/bus/clock)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

import asyncpg


class HasPool(Protocol):
    """`kundlinow.db.Database` (anything with an asyncpg pool)."""

    @property
    def pool(self) -> asyncpg.Pool: ...


class Publisher(Protocol):
    """The publishing half of `kundlinow.bus.EventBus`."""

    async def publish(self, topic: str, event: dict[str, Any]) -> None: ...


class Clock(Protocol):
    """`kundlinow.clock.Clock`: aware UTC now."""

    def now(self) -> datetime: ...
