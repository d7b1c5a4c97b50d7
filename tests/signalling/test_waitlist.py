"""The FIFO waitlist on real PostgreSQL."""

from __future__ import annotations

import asyncio

from core.db import Database
from kundlinow.config import Settings
from signalling.waitlist import Waitlist
from tests.factories import create_user


async def test_fifo_offer_once_and_expiry(database: Database, settings: Settings) -> None:
    waitlist = Waitlist(database.pool, offer_s=0.3)
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
    await asyncio.sleep(0.4)  # the offer lapses; the next caller is offered
    nxt = await waitlist.offer_next(astro.id)
    assert nxt is not None and nxt.caller_id == callers[1].id
    assert not await waitlist.is_open(astro.id, callers[0].id)
    await waitlist.taken(astro.id, callers[1].id)
    assert [e.caller_id for e in await waitlist.queued(astro.id)] == [callers[2].id]
    assert await waitlist.leave(astro.id, callers[2].id)
    assert await waitlist.offer_next(astro.id) is None
