"""Admin refunds (correcting transfer + audit log) and the payout lifecycle over REST + CLI."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp.test_utils import TestClient
from hypothesis import given
from hypothesis import strategies as st

from billing import ledger
from billing.audit import load_snapshot
from billing.consultations import ConsultationService, EndReason, Mode
from billing.invariants import check_all
from billing.model import PROMOTIONS, AccountKind, Transfer
from billing.payouts import PayoutService, SimulatedBankRail
from billing.refunds import consultant_part, refund_consultation
from core.db import Database
from kundlinow.config import Settings
from tests.billing.helpers import ManualClock, answered, balance, grant
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
    await answered(database, c.id, clock.now())
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


class FlakyRail(SimulatedBankRail):
    """A bank rail whose connection breaks for one payout (not a refusal: an error)."""

    def __init__(self, broken: uuid.UUID) -> None:
        super().__init__()
        self._broken = broken

    async def send(self, payout_id: uuid.UUID, consultant_id: uuid.UUID, amount_paise: int) -> str:
        if payout_id == self._broken:
            raise ConnectionResetError("bank connection reset")
        return await super().send(payout_id, consultant_id, amount_paise)


async def test_one_failing_payout_does_not_block_the_others(
    database: Database, settings: Settings
) -> None:
    admin = await create_user(database, settings, "admin")
    clock = ManualClock()
    service = PayoutService(database, clock, settings.billing)
    ids = []
    for _ in range(3):
        consultant = await create_user(database, settings, "consultant")
        await bonus(database, consultant.id, 150_000)
        p = await service.request(consultant.id, 100_000)
        await service.decide(p.id, admin.id, approve=True)
        clock.advance(1)
        ids.append(p.id)
    settled = await service.run(FlakyRail(broken=ids[0]))
    by_id = {p.id: p for p in settled}
    assert by_id[ids[0]].state == "failed"
    assert "bank connection reset" in (by_id[ids[0]].failure_reason or "")
    assert [by_id[i].state for i in ids[1:]] == ["posted", "posted"]
    hold = await database.pool.fetchval(
        "SELECT h.state FROM ledger_holds h JOIN payouts p ON p.hold_id = h.id WHERE p.id = $1",
        ids[0],
    )
    assert hold == "voided"
    logged = await database.pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'payout_failed' AND subject_id = $1",
        str(ids[0]),
    )
    assert logged == 1
    assert check_all(await load_snapshot(database.pool)) == []


async def test_partial_refunds_are_allocated_cumulatively(
    service: ConsultationService, database: Database, settings: Settings, clock: ManualClock
) -> None:
    caller = await create_user(database, settings, "user")
    consultant = await create_user(database, settings, "consultant")
    admin = await create_user(database, settings, "admin")
    await database.pool.execute(
        "UPDATE consultant_profiles SET rate_chat_paise = 1001, commission_percent = 33 "
        "WHERE user_id = $1",
        consultant.id,
    )
    await grant(database, caller.id, 10_000)
    c = await service.request(caller.id, consultant.id, Mode.CHAT)
    await service.accept(c.id, consultant.id)
    await answered(database, c.id, clock.now())
    clock.advance(30)
    await service.end(c.id, EndReason.COMPLETED)  # one minute: 1,001 paid, 671 share
    parts = [
        await refund_consultation(database, c.id, 1, "goodwill", admin.id, f"p{i}")
        for i in range(60)
    ]
    taken = sum(p.consultant_part_paise for p in parts)
    assert taken == 60 * 671 // 1001  # 40: the consultant's exact share of 60 paise
    assert sum(p.platform_part_paise for p in parts) == 60 - taken
    last = await refund_consultation(database, c.id, 1001 - 60, "rest", admin.id, "rest")
    assert taken + last.consultant_part_paise == 671  # all of it, never more
    assert await balance(database, AccountKind.EARNINGS, consultant.id) == 0
    assert check_all(await load_snapshot(database.pool)) == []


@given(
    paid=st.integers(1, 100_000),
    commission=st.integers(0, 100),
    cuts=st.lists(st.integers(1, 10_000), min_size=1, max_size=60),
)
def test_refund_allocation_property(paid: int, commission: int, cuts: list[int]) -> None:
    """Many partial refunds: after each, the consultant has returned exactly
    floor(refunded x share / paid), the platform the rest, neither more than it received."""
    share = paid - paid * commission // 100
    refunded = taken = 0
    for cut in cuts:
        amount = min(cut, paid - refunded)
        if amount <= 0:
            break
        part = consultant_part(paid, share, refunded, taken, amount)
        assert 0 <= part <= amount
        refunded, taken = refunded + amount, taken + part
        assert taken == refunded * share // paid
        assert taken <= share and refunded - taken <= paid - share
