"""The FIFO waitlist on real PostgreSQL."""

from __future__ import annotations

import asyncio

from core.db import Database
from kundlinow.config import Settings
from signalling.waitlist import Waitlist, WaitlistEntry
from tests.factories import create_user
from tests.polling import eventually


async def test_fifo_offer_once_and_expiry(database: Database, settings: Settings) -> None:
    # long enough for the checks below to run while the first offer holds, on a loaded machine
    waitlist = Waitlist(database.pool, offer_s=3.0)
    astro = await create_user(database, settings, "consultant")
    callers = [await create_user(database, settings) for _ in range(3)]
    positions = [await waitlist.join(astro.id, c.id, "chat") for c in callers]
    assert positions == [1, 2, 3]
    assert await waitlist.join(astro.id, callers[1].id, "chat") == 2  # joining twice: same place
    # every node reacts to the same event: only one offer is made
    offers = await asyncio.gather(*(waitlist.offer_next(astro.id) for _ in range(5)))
    made = [o for o in offers if o is not None]
    assert len(made) == 1 and made[0].caller_id == callers[0].id
    assert await waitlist.blocked_for(astro.id, callers[2].id)
    assert not await waitlist.blocked_for(astro.id, callers[0].id)
    later: list[WaitlistEntry] = []

    async def next_offered() -> bool:  # None while the first offer holds
        offer = await waitlist.offer_next(astro.id)
        later.extend([offer] if offer is not None else [])
        return bool(later)

    assert await eventually(next_offered), "the first offer never lapsed"
    assert later[0].caller_id == callers[1].id
    assert not await waitlist.is_open(astro.id, callers[0].id)
    await waitlist.taken(astro.id, callers[1].id)
    assert [e.caller_id for e in await waitlist.queued(astro.id)] == [callers[2].id]
    assert await waitlist.leave(astro.id, callers[2].id)
    assert await waitlist.offer_next(astro.id) is None
