"""The admin dashboard's numbers, force end (reason audit-logged, both parties told), the audit
log listing, the wallet push after a refund, and the astrologer's profile photo."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from core.db import Database
from kundlinow.config import Settings
from tests.billing.helpers import grant, served
from tests.factories import auth, create_user
from tests.signalling.conftest import WorldFactory, world_factory

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
def make_world(aiohttp_client: Any, settings: Settings, database: Database) -> WorldFactory:
    return world_factory(aiohttp_client, settings, database)


async def test_dashboard_force_end_and_audit(make_world: WorldFactory) -> None:
    world = await make_world()
    client: TestClient[Any, Any] = world.server
    admin = await world.user("admin")
    astrologer = await world.user("consultant")
    caller = await world.user(paise=100_000)
    caller_ws = await world.ws(caller)
    astro_ws = await world.ws(astrologer)
    ack = await caller_ws.ok(
        "consult_request", {"consultant_id": str(astrologer.id), "mode": "chat"}
    )
    cid = ack["consultation"]["id"]
    await astro_ws.ok("accept", {"consultation_id": cid})
    await served(world.database, uuid.UUID(cid))  # answered at once: ends charge, not refund

    r = await client.get("/admin/dashboard", headers=auth(admin.token))
    board = await r.json()
    assert r.status == 200
    assert [c["id"] for c in board["live"]] == [cid]
    assert board["live"][0]["caller"]["email"] == caller.email
    assert (board["astrologers_online"], board["astrologers_busy"]) == (0, 1)
    assert board["today"]["charges_paise"] == 1000
    assert board["today"]["revenue_paise"] == 300
    assert (await client.get("/admin/dashboard", headers=auth(caller.token))).status == 403

    r = await client.post(f"/admin/consultations/{cid}/end", json={}, headers=auth(admin.token))
    assert r.status == 422  # a reason is required
    r = await client.post(
        f"/admin/consultations/{cid}/end",
        json={"reason": "abuse reported"},
        headers=auth(admin.token),
    )
    assert r.status == 200 and (await r.json())["consultation"]["end_reason"] == "admin"
    for ws in (caller_ws, astro_ws):
        assert (await ws.event("session_end"))["reason"] == "admin"
    r = await client.post(
        f"/admin/consultations/{cid}/end", json={"reason": "again"}, headers=auth(admin.token)
    )
    assert (r.status, (await r.json())["error"]["code"]) == (409, "ALREADY_ENDED")

    r = await client.get(f"/admin/audit?subject_id={cid}", headers=auth(admin.token))
    [entry] = [e for e in (await r.json())["items"] if e["action"] == "consultation_force_ended"]
    assert entry["details"]["reason"] == "abuse reported"
    assert entry["actor"] == {"id": str(admin.id), "name": admin.email.split("@")[0]}

    # A refund reaches the caller's socket as a `wallet` event: the screen updates by itself.
    r = await client.post(
        f"/admin/consultations/{cid}/refund",
        json={"amount_paise": 500, "reason": "sorry"},
        headers=auth(admin.token),
    )
    assert r.status == 201
    pushed = await caller_ws.event("wallet")
    assert pushed["reason"] == "refund" and pushed["balance_paise"] == 100_000 - 1000 + 500

    # Pages of the audit log (the refund added an entry).
    r = await client.get("/admin/audit?limit=1", headers=auth(admin.token))
    first = await r.json()
    assert len(first["items"]) == 1 and first["next_before"] is not None
    r = await client.get(f"/admin/audit?before={first['next_before']}", headers=auth(admin.token))
    assert all(e["id"] < first["next_before"] for e in (await r.json())["items"])


async def test_profile_photo_upload_and_listing(
    client: TestClient[Any, Any], database: Database, settings: Settings
) -> None:
    astrologer = await create_user(database, settings, "consultant")
    caller = await create_user(database, settings)
    await grant(database, caller.id, 100)
    r = await client.get(f"/consultants/{astrologer.id}")
    assert (await r.json())["photo_url"] is None
    headers = {**auth(astrologer.token), "Content-Type": "image/png"}
    r = await client.put("/consultants/me/photo", data=PNG, headers=headers)
    assert r.status == 200
    url = (await r.json())["photo_url"]
    photo = await client.get(url)
    assert photo.status == 200 and photo.content_type == "image/png" and await photo.read() == PNG
    r = await client.get("/consultants")
    assert [c["photo_url"] for c in (await r.json())["items"]] == [url]

    fake = {**auth(astrologer.token), "Content-Type": "image/jpeg"}
    r = await client.put("/consultants/me/photo", data=PNG, headers=fake)
    assert (r.status, (await r.json())["error"]["code"]) == (415, "UNSUPPORTED_MEDIA_TYPE")
    r = await client.put("/consultants/me/photo", data=b"", headers=headers)
    assert r.status == 400
    r = await client.put(
        "/consultants/me/photo",
        data=PNG,
        headers={**auth(caller.token), "Content-Type": "image/png"},
    )
    assert r.status == 403
    r = await client.get(f"/consultants/{caller.id}/photo")
    assert (r.status, (await r.json())["error"]["code"]) == (404, "NOT_FOUND")
