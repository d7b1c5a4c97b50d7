"""A caller's and astrologer's own consultations (cursor pages), the receipt, and an admin's
view of any user's consultations — against the real app and PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp.test_utils import TestClient

from core.db import Database
from kundlinow.config import Settings
from tests.billing.helpers import grant, served
from tests.factories import TestUser, auth, create_user


async def finished_consultation(
    client: TestClient[Any, Any], database: Database, caller: TestUser, consultant: TestUser
) -> str:
    """A chat consultation: requested, accepted (minute 1 charged), answered, ended."""
    body = {"consultant_id": str(consultant.id), "mode": "chat"}
    r = await client.post("/consultations", json=body, headers=auth(caller.token))
    assert r.status == 201, await r.text()
    cid: str = (await r.json())["id"]
    assert (await client.post(f"/consultations/{cid}/accept", headers=auth(consultant.token))).ok
    await served(database, uuid.UUID(cid))  # unanswered chats are refunded; this one is charged
    assert (await client.post(f"/consultations/{cid}/end", headers=auth(caller.token))).ok
    return cid


async def test_own_consultations_page_newest_first_with_names(
    client: TestClient[Any, Any], database: Database, settings: Settings
) -> None:
    caller = await create_user(database, settings, "user")
    consultant = await create_user(database, settings, "consultant")
    stranger = await create_user(database, settings, "user")
    await grant(database, caller.id, 100_000)
    ids = [await finished_consultation(client, database, caller, consultant) for _ in range(3)]

    r = await client.get("/me/consultations?limit=2", headers=auth(caller.token))
    page = await r.json()
    assert r.status == 200
    assert [c["id"] for c in page["items"]] == ids[::-1][:2]
    first = page["items"][0]
    assert first["astrologer"]["name"] == consultant.email.split("@")[0]
    assert "email" not in first["astrologer"]  # callers do not see e-mail addresses
    assert (first["status"], first["end_reason"], first["minutes_charged"]) == (
        "ended",
        "completed",
        1,
    )
    assert first["charged_paise"] == 1000 and first["refunded_paise"] == 0
    r = await client.get(
        f"/me/consultations?limit=2&cursor={page['next_cursor']}", headers=auth(caller.token)
    )
    rest = await r.json()
    assert [c["id"] for c in rest["items"]] == [ids[0]] and rest["next_cursor"] is None

    r = await client.get("/me/consultations", headers=auth(consultant.token))
    assert [c["id"] for c in (await r.json())["items"]] == ids[::-1]
    r = await client.get("/me/consultations", headers=auth(stranger.token))
    assert (await r.json())["items"] == []
    r = await client.get("/me/consultations?cursor=nonsense", headers=auth(caller.token))
    assert (r.status, (await r.json())["error"]["code"]) == (400, "INVALID_CURSOR")
    r = await client.get("/me/consultations?limit=0", headers=auth(caller.token))
    assert r.status == 422
    assert (await client.get("/me/consultations")).status == 401


async def test_receipt_for_the_parties_and_admins_only(
    client: TestClient[Any, Any], database: Database, settings: Settings
) -> None:
    caller = await create_user(database, settings, "user")
    consultant = await create_user(database, settings, "consultant")
    admin = await create_user(database, settings, "admin")
    stranger = await create_user(database, settings, "user")
    await grant(database, caller.id, 100_000)
    cid = await finished_consultation(client, database, caller, consultant)
    r = await client.post(
        f"/admin/consultations/{cid}/refund",
        json={"amount_paise": 400, "reason": "poor line"},
        headers=auth(admin.token),
    )
    assert r.status == 201

    r = await client.get(f"/consultations/{cid}/receipt", headers=auth(caller.token))
    receipt = await r.json()
    assert receipt["consultation"]["refunded_paise"] == 400
    assert [(m["minute"], m["amount_paise"]) for m in receipt["charges"]] == [(1, 1000)]
    assert "your_share_paise" not in receipt["charges"][0]
    assert [(x["amount_paise"], x["reason"]) for x in receipt["refunds"]] == [(400, "poor line")]
    r = await client.get(f"/consultations/{cid}/receipt", headers=auth(consultant.token))
    assert (await r.json())["charges"][0]["your_share_paise"] == 700  # 30 % commission
    r = await client.get(f"/consultations/{cid}/receipt", headers=auth(admin.token))
    assert (await r.json())["consultation"]["caller"]["email"] == caller.email
    r = await client.get(f"/consultations/{cid}/receipt", headers=auth(stranger.token))
    assert (r.status, (await r.json())["error"]["code"]) == (404, "NOT_FOUND")
    r = await client.get("/consultations/nope/receipt", headers=auth(caller.token))
    assert r.status == 404

    r = await client.get(f"/admin/users/{caller.id}/consultations", headers=auth(admin.token))
    assert [c["id"] for c in (await r.json())["items"]] == [cid]
    r = await client.get(f"/admin/users/{caller.id}/consultations", headers=auth(caller.token))
    assert r.status == 403
