"""REST for consultations through the real app (create_app) and database."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from core.db import Database
from kundlinow.app import create_app
from kundlinow.config import Settings
from tests.billing.helpers import grant, served
from tests.factories import auth, create_user
from tests.polling import eventually


async def test_request_accept_end_over_rest(
    client: TestClient[Any, Any], database: Database, settings: Settings
) -> None:
    caller = await create_user(database, settings, "user")
    consultant = await create_user(database, settings, "consultant")
    stranger = await create_user(database, settings, "user")
    body = {"consultant_id": str(consultant.id), "mode": "voice"}
    r = await client.post("/consultations", json=body, headers=auth(caller.token))
    assert r.status == 402
    err = (await r.json())["error"]
    assert err["code"] == "INSUFFICIENT_BALANCE" and err["details"]["needed_paise"] == 5 * 1500
    await grant(database, caller.id, 10_000)
    r = await client.post("/consultations", json=body, headers=auth(caller.token))
    assert r.status == 201
    cid = (await r.json())["id"]
    r = await client.post("/consultations", json=body, headers=auth(caller.token))
    assert (r.status, (await r.json())["error"]["code"]) == (409, "ALREADY_LIVE")
    r = await client.post("/consultations", json={"mode": "x"}, headers=auth(caller.token))
    assert (r.status, (await r.json())["error"]["code"]) == (422, "VALIDATION_FAILED")
    r = await client.get(f"/consultations/{cid}", headers=auth(stranger.token))
    assert r.status == 404
    r = await client.post(f"/consultations/{cid}/accept", headers=auth(consultant.token))
    assert r.status == 200 and (await r.json())["minutes_charged"] == 1
    await served(database, uuid.UUID(cid))
    r = await client.post(f"/consultations/{cid}/end", headers=auth(caller.token))
    statement = await r.json()
    assert r.status == 200 and statement["amount_paise"] == 1500
    assert statement["consultation"]["end_reason"] == "completed"
    r = await client.get("/consultations/not-a-uuid", headers=auth(caller.token))
    assert (r.status, (await r.json())["error"]["code"]) == (404, "NOT_FOUND")
    r = await client.post("/consultations", json=body)
    assert r.status == 401


async def test_internal_ticker_charges_live_consultations(
    aiohttp_client: Callable[[web.Application], Awaitable[TestClient[Any, Any]]],
    database: Database,
    settings: Settings,
) -> None:
    """The server's own ticker (cleanup_ctx) charges each elapsed minute with no cron."""
    fast = replace(
        settings,
        billing=replace(settings.billing, minute_seconds=1, tick_interval_seconds=0.2),
    )
    client = await aiohttp_client(create_app(fast))
    caller = await create_user(database, fast, "user")
    consultant = await create_user(database, fast, "consultant")
    await grant(database, caller.id, 100_000)
    body = {"consultant_id": str(consultant.id), "mode": "chat"}
    r = await client.post("/consultations", json=body, headers=auth(caller.token))
    cid = (await r.json())["id"]
    await client.post(f"/consultations/{cid}/accept", headers=auth(consultant.token))
    minutes = 0

    async def three_minutes_charged() -> bool:
        nonlocal minutes
        r = await client.get(f"/consultations/{cid}", headers=auth(caller.token))
        minutes = (await r.json())["minutes_charged"]
        return bool(minutes >= 3)

    # three 1-second minutes: ~3 s on a quiet machine, far less than the deadline on a busy one
    assert await eventually(three_minutes_charged, 60, step=0.1), minutes
