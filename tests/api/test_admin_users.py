"""Admin user management: search, disable/enable (a disabled account cannot log in), approve an
astrologer, commission override (used by the next consultation) — each audit-logged."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from core.db import Database
from kundlinow.config import Settings
from tests.billing.helpers import grant
from tests.factories import DEFAULT_PASSWORD, auth, create_user


async def test_search_users_by_email_or_name_and_role(
    client: TestClient[Any, Any], database: Database, settings: Settings
) -> None:
    admin = await create_user(database, settings, "admin")
    asha = await create_user(database, settings, "user", email="asha.verma@example.test")
    guru = await create_user(database, settings, "consultant", email="guru@example.test")
    r = await client.get("/admin/users?q=ASHA", headers=auth(admin.token))
    assert [u["id"] for u in (await r.json())["items"]] == [str(asha.id)]
    r = await client.get("/admin/users?role=consultant", headers=auth(admin.token))
    [found] = (await r.json())["items"]
    assert found["id"] == str(guru.id)
    assert (found["approved"], found["commission_percent"], found["disabled"]) == (
        False,
        None,
        False,
    )
    r = await client.get("/admin/users?q=%25", headers=auth(admin.token))  # a literal %
    assert (await r.json())["items"] == []
    r = await client.get("/admin/users?limit=2", headers=auth(admin.token))
    page = await r.json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    r = await client.get(
        f"/admin/users?limit=2&cursor={page['next_cursor']}", headers=auth(admin.token)
    )
    assert len((await r.json())["items"]) == 1
    assert (await client.get("/admin/users", headers=auth(asha.token))).status == 403


async def test_disable_enable_approve_and_commission_are_audited(
    client: TestClient[Any, Any], database: Database, settings: Settings
) -> None:
    admin = await create_user(database, settings, "admin")
    caller = await create_user(database, settings, "user")
    guru = await create_user(database, settings, "consultant")
    login = {"email": caller.email, "password": DEFAULT_PASSWORD}

    r = await client.post(
        f"/admin/users/{caller.id}/disable", json={"reason": "fraud"}, headers=auth(admin.token)
    )
    assert (await r.json())["disabled"] is True
    r = await client.post("/auth/login", json=login)
    assert (r.status, (await r.json())["error"]["code"]) == (403, "ACCOUNT_DISABLED")
    r = await client.post(f"/admin/users/{caller.id}/enable", headers=auth(admin.token))
    assert (await r.json())["disabled"] is False
    assert (await client.post("/auth/login", json=login)).status == 200
    r = await client.post(f"/admin/users/{admin.id}/disable", headers=auth(admin.token))
    assert (r.status, (await r.json())["error"]["code"]) == (409, "CANNOT_DISABLE_SELF")

    r = await client.post(f"/admin/users/{guru.id}/approve", headers=auth(admin.token))
    assert (await r.json())["approved"] is True
    r = await client.get(f"/consultants/{guru.id}")
    assert (await r.json())["verified"] is True
    r = await client.post(f"/admin/users/{caller.id}/approve", headers=auth(admin.token))
    assert r.status == 404  # not an astrologer

    r = await client.put(
        f"/admin/users/{guru.id}/commission",
        json={"commission_percent": 10},
        headers=auth(admin.token),
    )
    assert (await r.json())["commission_percent"] == 10
    await grant(database, caller.id, 100_000)
    body = {"consultant_id": str(guru.id), "mode": "chat"}
    r = await client.post("/consultations", json=body, headers=auth(caller.token))
    cid = (await r.json())["id"]
    await client.post(f"/consultations/{cid}/accept", headers=auth(guru.token))
    r = await client.get(f"/consultations/{cid}/receipt", headers=auth(guru.token))
    assert (await r.json())["charges"][0]["your_share_paise"] == 900
    r = await client.put(
        f"/admin/users/{guru.id}/commission",
        json={"commission_percent": 101},
        headers=auth(admin.token),
    )
    assert r.status == 422
    r = await client.put(
        f"/admin/users/{guru.id}/commission",
        json={"commission_percent": None},
        headers=auth(admin.token),
    )
    assert (await r.json())["commission_percent"] is None

    r = await client.get("/admin/audit?limit=10", headers=auth(admin.token))
    actions = [e["action"] for e in (await r.json())["items"]]
    for action in ("user_disabled", "user_enabled", "astrologer_approved", "commission_changed"):
        assert action in actions
    r = await client.get(f"/admin/users/{caller.id}/disable", headers=auth(admin.token))
    assert r.status == 405
