"""Admin refunds (correcting transfer + audit log) and the payout lifecycle over REST + CLI."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp.test_utils import TestClient

from billing import ledger
from billing.audit import load_snapshot
from billing.consultations import ConsultationService, EndReason, Mode
from billing.invariants import check_all
from billing.model import PROMOTIONS, AccountKind, Transfer
from billing.payouts import PayoutService, SimulatedBankRail
from core.db import Database
from kundlinow.config import Settings
from tests.billing.helpers import ManualClock, balance, grant
from tests.factories import auth, create_user


async def test_admin_refund_is_a_correcting_transfer_with_audit(
    client: TestClient[Any, Any],
    database: Database,
    settings: Settings,
    service: ConsultationService,
    clock: ManualClock,
) -> None:
    caller = await create_user(database, settings, "user")
    consultant = await create_user(database, settings, "consultant")
    admin = await create_user(database, settings, "admin")
    await grant(database, caller.id, 10_000)
    c = await service.request(caller.id, consultant.id, Mode.CHAT)
    await service.accept(c.id, consultant.id)
    clock.advance(150)
    await service.end(c.id, EndReason.COMPLETED)  # 3 minutes: 3,000 paid, 2,100 to consultant
    url = f"/admin/consultations/{c.id}/refund"
    body = {"amount_paise": 1000, "reason": "poor audio", "idempotency_key": "ticket-1234"}
    r = await client.post(url, json=body, headers=auth(caller.token))
    assert r.status == 403
    r = await client.post(url, json=body, headers=auth(admin.token))
    assert r.status == 201, await r.text()
    done = await r.json()
    assert (done["consultant_part_paise"], done["platform_part_paise"]) == (700, 300)
    r = await client.post(url, json=body, headers=auth(admin.token))  # replay
    assert r.status == 200 and (await r.json())["replayed"] is True
    r = await client.post(url, json={**body, "amount_paise": 999}, headers=auth(admin.token))
    assert (r.status, (await r.json())["error"]["code"]) == (409, "IDEMPOTENCY_CONFLICT")
    over = {**body, "amount_paise": 2001, "idempotency_key": "ticket-5678"}
    r = await client.post(url, json=over, headers=auth(admin.token))
    assert (r.status, (await r.json())["error"]["code"]) == (422, "INVALID_AMOUNT")
    assert await balance(database, AccountKind.WALLET, caller.id) == 8_000
    assert await balance(database, AccountKind.EARNINGS, consultant.id) == 1_400
    log = await database.pool.fetch("SELECT * FROM audit_log")
    assert len(log) == 1 and log[0]["actor_id"] == admin.id
    assert log[0]["action"] == "consultation_refund"
    assert check_all(await load_snapshot(database.pool)) == []


async def bonus(database: Database, consultant_id: uuid.UUID, paise: int) -> None:
    """Earnings normally come from consultation shares; a promotions bonus is quicker here."""
    async with database.pool.acquire() as conn, conn.transaction():
        earn = await ledger.ensure_account(conn, AccountKind.EARNINGS, consultant_id)
        await ledger.post(
            conn,
            Transfer.build(f"bonus:{uuid.uuid4()}", "bonus", [(PROMOTIONS, -paise), (earn, paise)]),
        )


async def test_payout_lifecycle(
    client: TestClient[Any, Any], database: Database, settings: Settings
) -> None:
    consultant = await create_user(database, settings, "consultant")
    admin = await create_user(database, settings, "admin")
    await bonus(database, consultant.id, 250_000)
    headers = auth(consultant.token)
    r = await client.post("/payouts", json={"amount_paise": 99_999}, headers=headers)
    assert (r.status, (await r.json())["error"]["code"]) == (422, "INVALID_AMOUNT")
    r = await client.post("/payouts", json={"amount_paise": 300_000}, headers=headers)
    assert (r.status, (await r.json())["error"]["code"]) == (409, "INSUFFICIENT_EARNINGS")
    r = await client.post("/payouts", json={"amount_paise": 200_000}, headers=headers)
    assert r.status == 201
    payout = await r.json()
    r = await client.post("/payouts", json={"amount_paise": 100_000}, headers=headers)
    assert (r.status, (await r.json())["error"]["code"]) == (409, "PAYOUT_PENDING")
    r = await client.get("/earnings", headers=headers)
    e = await r.json()
    assert (e["balance_paise"], e["available_paise"]) == (250_000, 50_000)
    r = await client.post(f"/admin/payouts/{payout['id']}/approve", headers=headers)
    assert r.status == 403
    r = await client.post(f"/admin/payouts/{payout['id']}/approve", headers=auth(admin.token))
    assert (await r.json())["state"] == "approved"
    service = PayoutService(database, ManualClock(), settings.billing)
    settled = await service.run(SimulatedBankRail())
    assert [p.state for p in settled] == ["posted"] and settled[0].bank_reference
    assert await service.run(SimulatedBankRail()) == []  # nothing left to settle
    assert await balance(database, AccountKind.EARNINGS, consultant.id) == 50_000
    assert await balance(database, AccountKind.PAYOUTS_CLEARING, None) == 200_000
    # Rejected by an admin, and failed at the bank: both release the earnings.
    await bonus(database, consultant.id, 100_000)
    r = await client.post("/payouts", json={"amount_paise": 150_000}, headers=headers)
    rejected = await r.json()
    r = await client.post(f"/admin/payouts/{rejected['id']}/reject", headers=auth(admin.token))
    assert (await r.json())["state"] == "rejected"
    r = await client.post("/payouts", json={"amount_paise": 150_000}, headers=headers)
    failing = await r.json()
    await client.post(f"/admin/payouts/{failing['id']}/approve", headers=auth(admin.token))
    settled = await service.run(SimulatedBankRail(fail=frozenset({uuid.UUID(failing["id"])})))
    assert [(p.state, p.failure_reason) for p in settled] == [("voided", "account closed")]
    r = await client.get("/earnings", headers=headers)
    e = await r.json()
    assert (e["balance_paise"], e["available_paise"]) == (150_000, 150_000)
    r = await client.get("/admin/payouts?state=posted", headers=auth(admin.token))
    assert [p["id"] for p in (await r.json())["items"]] == [payout["id"]]
    assert check_all(await load_snapshot(database.pool)) == []
