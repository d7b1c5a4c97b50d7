"""The FIFO waitlist on real PostgreSQL."""

from __future__ import annotations

import asyncio

from core.db import Database
from kundlinow.config import Settings
from signalling.waitlist import Waitlist, WaitlistEntry
from tests.factories import create_user
from tests.polling import eventually
from tests.signalling.conftest import WorldFactory
from tests.signalling.test_lifecycle import FUNDS, _start


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


# ---------------------------------------------------------------------- who may queue, over sockets

CHAT_START = 5 * 1000  # MIN_START_MINUTES (5) of the test astrologers' chat rate (1000 paise)


async def test_only_callers_who_could_start_may_queue(make_world: WorldFactory) -> None:
    """Empty accounts, astrologers and admins cannot take places that hold a freed slot."""
    world = await make_world(waitlist_offer_s=30)
    astro_user = await world.user("consultant")
    astro = await world.ws(astro_user)
    first = await world.ws(await world.user(paise=CHAT_START))
    await _start(first, astro, str(astro_user.id))
    join = {"consultant_id": str(astro_user.id), "action": "join"}
    request = {"consultant_id": str(astro_user.id), "mode": "chat", "waitlist": True}
    for _ in range(4):
        empty = await world.ws(await world.user())
        assert await empty.fail("waitlist", join) == "INSUFFICIENT_BALANCE"
        assert await empty.fail("consult_request", request) == "INSUFFICIENT_BALANCE"
    other_astro = await world.ws(await world.user("consultant"))
    admin = await world.ws(await world.user("admin"))
    for who in (other_astro, admin):
        assert await who.fail("waitlist", join) == "FORBIDDEN"
    payer = await world.ws(await world.user(paise=CHAT_START))
    assert (await payer.ok("consult_request", request))["position"] == 1


async def test_one_place_per_caller(make_world: WorldFactory) -> None:
    world = await make_world(waitlist_offer_s=30)
    astros = [await world.user("consultant") for _ in range(2)]
    for astro_user in astros:  # both busy
        busy_with = await world.ws(await world.user(paise=CHAT_START))
        await _start(busy_with, await world.ws(astro_user), str(astro_user.id))
    caller = await world.ws(await world.user(paise=CHAT_START))
    first = {"consultant_id": str(astros[0].id), "action": "join"}
    assert (await caller.ok("waitlist", first))["position"] == 1
    assert (await caller.ok("waitlist", first))["position"] == 1  # the same place again
    frame = await caller.request("waitlist", {"consultant_id": str(astros[1].id),
                                              "action": "join"})
    assert frame["data"]["code"] == "ALREADY_WAITLISTED"
    assert frame["data"]["details"]["consultant_id"] == str(astros[0].id)
    assert (await caller.ok("waitlist", {**first, "action": "leave"}))["left"]
    assert (await caller.ok("waitlist", {"consultant_id": str(astros[1].id),
                                         "action": "join"}))["position"] == 1


async def test_offer_skips_callers_who_can_no_longer_start(make_world: WorldFactory) -> None:
    world = await make_world(waitlist_offer_s=30)
    astro_user, elsewhere_user = await world.user("consultant"), await world.user("consultant")
    astro = await world.ws(astro_user)
    await world.ws(elsewhere_user)  # online, so the spender's request reaches them
    first = await world.ws(await world.user(paise=CHAT_START))
    cid = await _start(first, astro, str(astro_user.id))
    spender_user = await world.user(paise=CHAT_START)
    spender, patient = await world.ws(spender_user), await world.ws(await world.user(paise=FUNDS))
    join = {"consultant_id": str(astro_user.id), "action": "join"}
    assert (await spender.ok("waitlist", join))["position"] == 1
    assert (await patient.ok("waitlist", join))["position"] == 2
    # the first in line spends the money elsewhere meanwhile (the request holds it)
    await spender.ok("consult_request", {"consultant_id": str(elsewhere_user.id), "mode": "chat"})
    await astro.ok("session_end", {"consultation_id": cid})
    skipped = await spender.event("waitlist", status="skipped", wait_s=20)
    assert skipped["consultant_id"] == str(astro_user.id)
    offer = await patient.event("waitlist", status="offered", wait_s=20)
    assert offer["consultant_id"] == str(astro_user.id)
