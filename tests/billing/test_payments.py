"""Recharges through the real razorpay SDK against a local stand-in of Razorpay's API."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from billing.audit import load_snapshot
from billing.config import BillingSettings
from billing.gateway import SimulatorGateway, build_gateway
from billing.invariants import check_all
from core.db import Database
from kundlinow.config import Settings
from tests.billing.razorpay_standin import RazorpayStandIn
from tests.factories import auth, create_user


async def wallet_balance(client: TestClient[Any, Any], token: str) -> int:
    r = await client.get("/wallet", headers=auth(token))
    assert r.status == 200
    return int((await r.json())["balance_paise"])


async def new_order(client: TestClient[Any, Any], token: str, amount: int) -> str:
    r = await client.post("/wallet/recharge", json={"amount_paise": amount}, headers=auth(token))
    assert r.status == 201, await r.text()
    return str((await r.json())["order_id"])


async def healthy(database: Database) -> None:
    assert check_all(await load_snapshot(database.pool)) == []


async def test_recharge_creates_order_and_verify_credits_once(
    pay_client: TestClient[Any, Any],
    razorpay: RazorpayStandIn,
    database: Database,
    paid_settings: Settings,
) -> None:
    user = await create_user(database, paid_settings)
    order_id = await new_order(pay_client, user.token, 50_000)
    assert razorpay.orders[order_id]["amount"] == 50_000  # went through the SDK
    callback = razorpay.checkout(order_id)
    bad = {**callback, "razorpay_signature": "0" * 64}
    r = await pay_client.post("/wallet/recharge/verify", json=bad, headers=auth(user.token))
    assert (r.status, (await r.json())["error"]["code"]) == (400, "INVALID_SIGNATURE")
    assert await wallet_balance(pay_client, user.token) == 0
    r = await pay_client.post("/wallet/recharge/verify", json=callback, headers=auth(user.token))
    assert r.status == 200 and (await r.json())["outcome"] == "credited"
    r = await pay_client.post("/wallet/recharge/verify", json=callback, headers=auth(user.token))
    assert r.status == 200 and (await r.json())["outcome"] == "already_credited"
    assert await wallet_balance(pay_client, user.token) == 50_000
    other = await create_user(database, paid_settings)
    r = await pay_client.post("/wallet/recharge/verify", json=callback, headers=auth(other.token))
    assert r.status == 404  # someone else's order
    r = await pay_client.get("/wallet/transactions?limit=1", headers=auth(user.token))
    page = await r.json()
    assert page["items"][0]["kind"] == "recharge" and page["items"][0]["amount_paise"] == 50_000
    await healthy(database)


@pytest.mark.parametrize("amount", [0, 99, 10_000_001, "100"])
async def test_recharge_amount_limits(
    pay_client: TestClient[Any, Any], database: Database, paid_settings: Settings, amount: Any
) -> None:
    user = await create_user(database, paid_settings)
    r = await pay_client.post(
        "/wallet/recharge", json={"amount_paise": amount}, headers=auth(user.token)
    )
    assert (r.status, (await r.json())["error"]["code"]) == (422, "VALIDATION_FAILED")


async def test_webhook_signature_replay_and_amount_mismatch(
    pay_client: TestClient[Any, Any],
    razorpay: RazorpayStandIn,
    database: Database,
    paid_settings: Settings,
) -> None:
    user = await create_user(database, paid_settings)
    order_id = await new_order(pay_client, user.token, 20_000)
    body, headers = razorpay.webhook("payment.captured", order_id, "pay_A", 20_000)
    forged = {**headers, "X-Razorpay-Signature": "f" * 64}
    r = await pay_client.post("/webhooks/razorpay", data=body, headers=forged)
    assert (r.status, (await r.json())["error"]["code"]) == (400, "INVALID_SIGNATURE")
    tampered = body.replace(b"20000", b"90000")
    r = await pay_client.post("/webhooks/razorpay", data=tampered, headers=headers)
    assert r.status == 400
    assert await wallet_balance(pay_client, user.token) == 0
    r = await pay_client.post("/webhooks/razorpay", data=body, headers=headers)
    assert r.status == 200 and (await r.json())["outcome"] == "credited"
    r = await pay_client.post("/webhooks/razorpay", data=body, headers=headers)  # replay
    assert r.status == 200 and (await r.json())["status"] == "duplicate"
    body2, headers2 = razorpay.webhook("order.paid", order_id, "pay_A", 20_000)
    r = await pay_client.post("/webhooks/razorpay", data=body2, headers=headers2)
    assert r.status == 200 and (await r.json())["outcome"] == "already_credited"
    assert await wallet_balance(pay_client, user.token) == 20_000
    # A correctly signed event whose amount differs from the stored order: rejected, logged.
    order2 = await new_order(pay_client, user.token, 30_000)
    body3, headers3 = razorpay.webhook("payment.captured", order2, "pay_B", 3_000)
    r = await pay_client.post("/webhooks/razorpay", data=body3, headers=headers3)
    err = (await r.json())["error"]
    assert r.status == 400 and err["code"] == "AMOUNT_MISMATCH"
    assert err["details"] == {"expected_paise": 30_000, "received_paise": 3_000}
    anomaly = await database.pool.fetchrow("SELECT * FROM payment_anomalies")
    assert (anomaly["kind"], anomaly["gateway_order_id"]) == ("amount_mismatch", order2)
    assert await wallet_balance(pay_client, user.token) == 20_000
    await healthy(database)


async def test_verify_and_webhook_racing_credit_exactly_once(
    pay_client: TestClient[Any, Any],
    razorpay: RazorpayStandIn,
    database: Database,
    paid_settings: Settings,
) -> None:
    user = await create_user(database, paid_settings)
    orders = [await new_order(pay_client, user.token, 1_000 + i) for i in range(8)]
    calls = []
    for i, order_id in enumerate(orders):
        callback = razorpay.checkout(order_id, f"pay_race{i}")
        body, headers = razorpay.webhook("payment.captured", order_id, f"pay_race{i}", 1_000 + i)
        body2, headers2 = razorpay.webhook("order.paid", order_id, f"pay_race{i}", 1_000 + i)
        calls += [
            pay_client.post("/wallet/recharge/verify", json=callback, headers=auth(user.token)),
            pay_client.post("/webhooks/razorpay", data=body, headers=headers),
            pay_client.post("/webhooks/razorpay", data=body2, headers=headers2),
            pay_client.post("/webhooks/razorpay", data=body, headers=headers),
        ]
    responses = await asyncio.gather(*calls)
    assert all(r.status == 200 for r in responses)
    assert await wallet_balance(pay_client, user.token) == sum(1_000 + i for i in range(8))
    credits = await database.pool.fetchval(
        "SELECT count(*) FROM ledger_transfers WHERE kind = 'recharge'"
    )
    assert credits == 8
    await healthy(database)


async def test_failed_payment_and_gateway_refund(
    pay_client: TestClient[Any, Any],
    razorpay: RazorpayStandIn,
    database: Database,
    paid_settings: Settings,
) -> None:
    user = await create_user(database, paid_settings)
    failed = await new_order(pay_client, user.token, 5_000)
    body, headers = razorpay.webhook("payment.failed", failed, "pay_F", 5_000)
    r = await pay_client.post("/webhooks/razorpay", data=body, headers=headers)
    assert (await r.json())["outcome"] == "marked_failed"
    paid = await new_order(pay_client, user.token, 5_000)
    await pay_client.post(
        "/wallet/recharge/verify", json=razorpay.checkout(paid, "pay_P"), headers=auth(user.token)
    )
    body, headers = razorpay.webhook("refund.processed", paid, "pay_P", 2_000, refund_id="rfnd_1")
    r = await pay_client.post("/webhooks/razorpay", data=body, headers=headers)
    assert (await r.json())["outcome"] == "refund_debited"
    assert await wallet_balance(pay_client, user.token) == 3_000
    status = await database.pool.fetchval(
        "SELECT status FROM payment_orders WHERE gateway_order_id = $1", failed
    )
    assert status == "failed"
    await healthy(database)


async def test_gateway_failure_is_502(
    pay_client: TestClient[Any, Any],
    razorpay: RazorpayStandIn,
    database: Database,
    paid_settings: Settings,
) -> None:
    user = await create_user(database, paid_settings)
    razorpay.fail_with = 500
    r = await pay_client.post(
        "/wallet/recharge", json={"amount_paise": 500}, headers=auth(user.token)
    )
    assert (r.status, (await r.json())["error"]["code"]) == (502, "GATEWAY_UNAVAILABLE")
    assert await database.pool.fetchval("SELECT count(*) FROM payment_orders") == 0


async def test_dev_simulator_pays_with_signed_callbacks(
    client: TestClient[Any, Any], database: Database, settings: Settings
) -> None:
    user = await create_user(database, settings)
    order_id = await new_order(client, user.token, 10_000)
    r = await client.post(
        "/wallet/recharge/simulate", json={"order_id": order_id}, headers=auth(user.token)
    )
    signed = await r.json()
    r = await client.post(
        "/wallet/recharge/verify", json=signed["checkout"], headers=auth(user.token)
    )
    assert (await r.json())["outcome"] == "credited"
    hook = signed["webhook"]
    r = await client.post(
        "/webhooks/razorpay",
        data=hook["body"].encode(),
        headers={
            "X-Razorpay-Signature": hook["signature"],
            "X-Razorpay-Event-Id": hook["event_id"],
        },
    )
    assert (await r.json())["outcome"] == "already_credited"
    assert await wallet_balance(client, user.token) == 10_000


def test_simulator_refused_in_production() -> None:
    with pytest.raises(RuntimeError):
        SimulatorGateway(production=True)
    assert build_gateway(replace(BillingSettings(), production=True)) is None
    assert isinstance(build_gateway(BillingSettings()), SimulatorGateway)


async def test_a_payment_id_reused_for_another_order_is_refused_and_recorded(
    pay_client: TestClient[Any, Any],
    razorpay: RazorpayStandIn,
    database: Database,
    paid_settings: Settings,
) -> None:
    user = await create_user(database, paid_settings)
    first = await new_order(pay_client, user.token, 5_000)
    second = await new_order(pay_client, user.token, 5_000)
    third = await new_order(pay_client, user.token, 5_000)
    r = await pay_client.post(
        "/wallet/recharge/verify", json=razorpay.checkout(first, "pay_X"), headers=auth(user.token)
    )
    assert (await r.json())["outcome"] == "credited"
    r = await pay_client.post(
        "/wallet/recharge/verify", json=razorpay.checkout(second, "pay_X"), headers=auth(user.token)
    )
    assert (r.status, (await r.json())["error"]["code"]) == (409, "PAYMENT_ID_REUSED")
    body, headers = razorpay.webhook("payment.captured", third, "pay_X", 5_000)
    r = await pay_client.post("/webhooks/razorpay", data=body, headers=headers)
    assert (r.status, (await r.json())["error"]["code"]) == (409, "PAYMENT_ID_REUSED")
    assert await wallet_balance(pay_client, user.token) == 5_000
    anomalies = await database.pool.fetch(
        "SELECT gateway_order_id FROM payment_anomalies WHERE kind = 'payment_id_reused' "
        "ORDER BY id"
    )
    assert [a["gateway_order_id"] for a in anomalies] == [second, third]
    audited = await database.pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'payment_id_reused'"
    )
    assert audited == 2
    statuses = await database.pool.fetch(
        "SELECT status FROM payment_orders WHERE gateway_order_id = ANY($1::text[])",
        [second, third],
    )
    assert {s["status"] for s in statuses} == {"created"}
    await healthy(database)


async def test_a_replayed_gateway_refund_is_a_duplicate(
    pay_client: TestClient[Any, Any],
    razorpay: RazorpayStandIn,
    database: Database,
    paid_settings: Settings,
) -> None:
    user = await create_user(database, paid_settings)
    paid = await new_order(pay_client, user.token, 5_000)
    await pay_client.post(
        "/wallet/recharge/verify", json=razorpay.checkout(paid, "pay_R"), headers=auth(user.token)
    )
    outcomes = []
    for _ in range(2):  # Razorpay redelivers with a new event id
        body, headers = razorpay.webhook(
            "refund.processed", paid, "pay_R", 2_000, refund_id="rfnd_R"
        )
        r = await pay_client.post("/webhooks/razorpay", data=body, headers=headers)
        outcomes.append((await r.json())["outcome"])
    assert outcomes == ["refund_debited", "duplicate"]
    assert await wallet_balance(pay_client, user.token) == 3_000
    await healthy(database)
