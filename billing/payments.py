"""Wallet recharges: orders, checkout verification and webhooks; each payment credited once.

Both the checkout `verify` call and the `payment.captured` / `order.paid` webhooks end in
`_credit`, which locks the stored order row, so whichever arrives second sees it paid; the
transfer key `recharge:<payment id>` makes a double credit impossible even without the lock.
An amount that differs from the stored order, or a payment id already credited to another
order, is rejected (no money moves) and recorded in payment_anomalies and the audit log.
A `refund.processed` replayed under a new event id answers `duplicate`.
"""

from __future__ import annotations

import abc
import enum
import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog

from billing import ledger
from billing.config import BillingSettings
from billing.errors import (
    AmountMismatch,
    BillingError,
    GatewayUnavailable,
    InvalidAmount,
    InvalidSignature,
    NotFound,
)
from billing.gateway import PaymentGateway
from billing.model import GATEWAY_CLEARING, AccountKind, Transfer
from billing.ports import Clock, HasPool
from billing.signatures import verify_payment, verify_webhook
from core import audit as audit_log

log = structlog.get_logger(__name__)


class CreditOutcome(enum.StrEnum):
    CREDITED = "credited"
    ALREADY_CREDITED = "already_credited"
    OTHER_PAYMENT = "other_payment_already_credited"


@dataclass(frozen=True, slots=True)
class Order:
    id: uuid.UUID
    user_id: uuid.UUID
    gateway: str
    gateway_order_id: str
    amount_paise: int
    status: str
    payment_id: str | None

    @classmethod
    def from_row(cls, r: asyncpg.Record) -> Order:
        return cls(
            r["id"],
            r["user_id"],
            r["gateway"],
            r["gateway_order_id"],
            r["amount_paise"],
            r["status"],
            r["payment_id"],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "order_id": self.gateway_order_id,
            "gateway": self.gateway,
            "amount_paise": self.amount_paise,
            "currency": "INR",
            "status": self.status,
            "payment_id": self.payment_id,
        }


class _Rejected(Exception, abc.ABC):
    """A payment refused after its transaction rolled back; recorded outside it."""

    anomaly = ""

    def __init__(self, order: Order, payment_id: str, received: int | None) -> None:
        super().__init__(self.anomaly)
        self.order, self.payment_id, self.received = order, payment_id, received

    @abc.abstractmethod
    def error(self) -> BillingError:
        """The error the client is answered with."""


class _Mismatch(_Rejected):
    anomaly = "amount_mismatch"

    def error(self) -> BillingError:
        return AmountMismatch(
            "payment amount differs from the order",
            expected_paise=self.order.amount_paise,
            received_paise=self.received,
        )


class _Reused(_Rejected):
    anomaly = "payment_id_reused"

    def __init__(self, order: Order, payment_id: str, received: int | None, other: str) -> None:
        super().__init__(order, payment_id, received)
        self.other = other

    def error(self) -> BillingError:
        return PaymentIdReused(
            "this payment was already credited to another order", payment_id=self.payment_id
        )


class PaymentService:
    """Recharge orders and their crediting."""

    def __init__(
        self,
        db: HasPool,
        gateway: PaymentGateway | None,
        clock: Clock,
        settings: BillingSettings,
    ) -> None:
        self._db = db
        self._gateway = gateway
        self._clock = clock
        self._settings = settings

    @property
    def gateway(self) -> PaymentGateway | None:
        return self._gateway

    def _require_gateway(self) -> PaymentGateway:
        if self._gateway is None:
            raise GatewayUnavailable("payments are not configured (set RAZORPAY_KEY_ID/SECRET)")
        return self._gateway

    async def create_order(self, user_id: uuid.UUID, amount_paise: int) -> tuple[Order, str]:
        """Create a gateway order for a recharge; returns it with the checkout key id."""
        s = self._settings
        if not s.recharge_min_paise <= amount_paise <= s.recharge_max_paise:
            raise InvalidAmount(
                "recharge must be between ₹1 and ₹1,00,000",
                min_paise=s.recharge_min_paise,
                max_paise=s.recharge_max_paise,
            )
        gateway = self._require_gateway()
        receipt = f"rcpt_{uuid.uuid4().hex[:20]}"
        created = await gateway.create_order(amount_paise, receipt, {"user_id": str(user_id)})
        row = await self._db.pool.fetchrow(
            "INSERT INTO payment_orders (user_id, gateway, gateway_order_id, amount_paise, "
            "currency, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
            user_id,
            gateway.name,
            created.id,
            amount_paise,
            created.currency,
            self._clock.now(),
        )
        log.info("recharge_order_created", order_id=created.id, amount_paise=amount_paise)
        return Order.from_row(row), gateway.key_id

    async def order(self, user_id: uuid.UUID, gateway_order_id: str) -> Order:
        row = await self._db.pool.fetchrow(
            "SELECT * FROM payment_orders WHERE gateway_order_id = $1 AND user_id = $2",
            gateway_order_id,
            user_id,
        )
        if row is None:
            raise NotFound("order not found", order_id=gateway_order_id)
        return Order.from_row(row)

    async def verify(
        self, user_id: uuid.UUID, gateway_order_id: str, payment_id: str, signature: str
    ) -> tuple[Order, CreditOutcome]:
        """Checkout callback: the signature is checked against the STORED order, then credit."""
        gateway = self._require_gateway()
        stored = await self.order(user_id, gateway_order_id)
        if not verify_payment(gateway.key_secret, stored.gateway_order_id, payment_id, signature):
            log.warning("recharge_signature_rejected", order_id=gateway_order_id)
            raise InvalidSignature("payment signature does not match the order")
        return await self._credit_outside(stored.gateway_order_id, payment_id, None)

    async def handle_webhook(
        self, body: bytes, signature: str, event_id: str | None
    ) -> dict[str, Any]:
        """A Razorpay webhook: signature over the raw body, de-duplicated by event id."""
        gateway = self._require_gateway()
        if not verify_webhook(gateway.webhook_secret, body, signature):
            log.warning("webhook_signature_rejected")
            raise InvalidSignature("webhook signature does not match")
        try:
            event = json.loads(body)
            kind = str(event["event"])
            payload = event.get("payload") or {}
        except (ValueError, KeyError, TypeError) as exc:
            raise WebhookInvalid("webhook body is not a Razorpay event") from exc
        eid = event_id or "sha256:" + hashlib.sha256(body).hexdigest()
        try:
            async with self._db.pool.acquire() as conn, conn.transaction():
                fresh = await conn.fetchval(
                    "INSERT INTO payment_webhook_events (event_id, event, outcome) "
                    "VALUES ($1, $2, 'processing') ON CONFLICT DO NOTHING RETURNING event_id",
                    eid,
                    kind,
                )
                if fresh is None:
                    log.info("webhook_duplicate", event_id=eid, webhook_event=kind)
                    return {"status": "duplicate", "event_id": eid}
                outcome = await self._dispatch(conn, kind, payload)
                await conn.execute(
                    "UPDATE payment_webhook_events SET outcome = $2 WHERE event_id = $1",
                    eid,
                    outcome,
                )
        except _Rejected as rejected:
            await self._record_rejection(rejected)
            raise rejected.error() from None
        log.info("webhook_processed", event_id=eid, webhook_event=kind, outcome=outcome)
        return {"status": "processed", "event_id": eid, "outcome": outcome}

    async def _dispatch(self, conn: asyncpg.Connection, kind: str, payload: dict[str, Any]) -> str:
        try:
            if kind == "payment.captured":
                p = payload["payment"]["entity"]
                return (
                    await self._credit(conn, str(p["order_id"]), str(p["id"]), int(p["amount"]))
                )[1]
            if kind == "order.paid":
                o, p = payload["order"]["entity"], payload["payment"]["entity"]
                if str(p.get("order_id", o["id"])) != str(o["id"]):
                    raise WebhookInvalid("order.paid payment belongs to another order")
                return (await self._credit(conn, str(o["id"]), str(p["id"]), int(p["amount"])))[1]
            if kind == "payment.failed":
                p = payload["payment"]["entity"]
                done = await conn.fetchval(
                    "UPDATE payment_orders SET status = 'failed' WHERE gateway_order_id = $1 "
                    "AND status = 'created' RETURNING id",
                    str(p["order_id"]),
                )
                return "marked_failed" if done else "ignored"
            if kind == "refund.processed":
                r = payload["refund"]["entity"]
                return await self._gateway_refund(
                    conn, str(r["id"]), str(r["payment_id"]), int(r["amount"])
                )
        except (KeyError, TypeError, ValueError) as exc:
            raise WebhookInvalid(f"malformed {kind} payload") from exc
        return "ignored"

    async def _credit_outside(
        self, gateway_order_id: str, payment_id: str, amount: int | None
    ) -> tuple[Order, CreditOutcome]:
        try:
            async with self._db.pool.acquire() as conn, conn.transaction():
                return await self._credit(conn, gateway_order_id, payment_id, amount)
        except _Rejected as rejected:
            await self._record_rejection(rejected)
            raise rejected.error() from None

    async def _credit(
        self, conn: asyncpg.Connection, gateway_order_id: str, payment_id: str, amount: int | None
    ) -> tuple[Order, CreditOutcome]:
        row = await conn.fetchrow(
            "SELECT * FROM payment_orders WHERE gateway_order_id = $1 FOR UPDATE", gateway_order_id
        )
        if row is None:
            raise NotFound("order not found", order_id=gateway_order_id)
        order = Order.from_row(row)
        if amount is not None and amount != order.amount_paise:
            raise _Mismatch(order, payment_id, amount)
        if order.status == "paid":
            if order.payment_id == payment_id:
                return order, CreditOutcome.ALREADY_CREDITED
            await self._anomaly(conn, "second_payment_for_paid_order", order, payment_id, amount)
            return order, CreditOutcome.OTHER_PAYMENT
        # One payment credits one order: serialise the check on the payment id itself (the
        # order row lock does not cover two orders naming the same payment).
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('payment:' || $1, 0))", payment_id
        )
        other = await conn.fetchval(
            "SELECT gateway_order_id FROM payment_orders WHERE payment_id = $1", payment_id
        )
        if other is not None:
            raise _Reused(order, payment_id, amount, other)
        wallet = await ledger.ensure_account(conn, AccountKind.WALLET, order.user_id)
        posted = await ledger.post(
            conn,
            Transfer.build(
                f"recharge:{payment_id}",
                "recharge",
                [(GATEWAY_CLEARING, -order.amount_paise), (wallet, order.amount_paise)],
            ),
        )
        updated = await conn.fetchrow(
            "UPDATE payment_orders SET status = 'paid', payment_id = $2, transfer_id = $3, "
            "paid_at = $4 WHERE id = $1 RETURNING *",
            order.id,
            payment_id,
            posted.transfer_id,
            self._clock.now(),
        )
        log.info("wallet_recharged", order_id=gateway_order_id, amount_paise=order.amount_paise)
        return Order.from_row(updated), CreditOutcome.CREDITED

    async def _gateway_refund(
        self, conn: asyncpg.Connection, refund_id: str, payment_id: str, amount: int
    ) -> str:
        """Money refunded to the card by Razorpay leaves the wallet (never below zero)."""
        row = await conn.fetchrow(
            "SELECT * FROM payment_orders WHERE payment_id = $1 FOR UPDATE", payment_id
        )
        if row is None:
            return "ignored_unknown_payment"
        key = f"gateway_refund:{refund_id}"
        if await conn.fetchval("SELECT 1 FROM ledger_transfers WHERE idempotency_key = $1", key):
            return "duplicate"  # redelivered under a new event id (the order row lock serialises)
        order = Order.from_row(row)
        wallet = await ledger.ensure_account(conn, AccountKind.WALLET, order.user_id)
        acct = (await ledger.lock_accounts(conn, [wallet]))[wallet]
        take = min(amount, max(acct.balance, 0))
        if take < amount:
            await self._anomaly(conn, "refund_exceeds_wallet", order, payment_id, amount)
        if take <= 0:
            return "refund_uncovered"
        await ledger.post(
            conn,
            Transfer.build(
                key,
                "gateway_refund",
                [(wallet, -take), (GATEWAY_CLEARING, take)],
            ),
            allow_into_holds=True,
        )
        return "refund_debited"

    async def _anomaly(
        self,
        conn: asyncpg.Connection,
        kind: str,
        order: Order,
        payment_id: str,
        received: int | None,
    ) -> None:
        log.warning(
            "payment_anomaly",
            anomaly=kind,
            order_id=order.gateway_order_id,
            payment_id=payment_id,
            expected_paise=order.amount_paise,
            received_paise=received,
        )
        await conn.execute(
            "INSERT INTO payment_anomalies (kind, gateway_order_id, payment_id, expected_paise, "
            "received_paise) VALUES ($1, $2, $3, $4, $5)",
            kind,
            order.gateway_order_id,
            payment_id,
            order.amount_paise,
            received,
        )

    async def _record_rejection(self, rejected: _Rejected) -> None:
        async with self._db.pool.acquire() as conn, conn.transaction():
            await self._anomaly(
                conn, rejected.anomaly, rejected.order, rejected.payment_id, rejected.received
            )
            if isinstance(rejected, _Reused):
                await audit_log.record(
                    conn,
                    None,
                    "payment_id_reused",
                    "payment_order",
                    rejected.order.gateway_order_id,
                    {"payment_id": rejected.payment_id, "credited_order": rejected.other},
                )


class WebhookInvalid(BillingError):
    status = 400
    code = "INVALID_WEBHOOK"


class PaymentIdReused(BillingError):
    status = 409
    code = "PAYMENT_ID_REUSED"
