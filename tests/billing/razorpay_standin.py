"""A local HTTP stand-in for Razorpay's Orders API (the only faked part), plus helpers that sign
checkout callbacks and webhooks the way Razorpay does. Our code talks to it through the real
`razorpay` SDK (base_url)."""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from billing.signatures import payment_signature, sign


@dataclass
class RazorpayStandIn:
    key_id: str = "rzp_test_standin"
    key_secret: str = field(default_factory=lambda: secrets.token_hex(12))
    webhook_secret: str = field(default_factory=lambda: secrets.token_hex(12))
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    fail_with: int | None = None
    """When set, every API call answers with this HTTP status."""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/orders", self._create)
        app.router.add_get("/v1/orders/{id}", self._fetch)
        return app

    def _authorised(self, request: web.Request) -> bool:
        expected = base64.b64encode(f"{self.key_id}:{self.key_secret}".encode()).decode()
        return request.headers.get("Authorization") == f"Basic {expected}"

    @staticmethod
    def _error(status: int, code: str, description: str) -> web.Response:
        return web.json_response(
            {"error": {"code": code, "description": description}}, status=status
        )

    async def _create(self, request: web.Request) -> web.Response:
        if self.fail_with:
            return self._error(self.fail_with, "SERVER_ERROR", "stand-in told to fail")
        if not self._authorised(request):
            return self._error(401, "BAD_REQUEST_ERROR", "Authentication failed")
        data = await request.json()
        amount = data.get("amount")
        if not isinstance(amount, int) or amount < 100 or data.get("currency") != "INR":
            return self._error(400, "BAD_REQUEST_ERROR", "The amount must be at least INR 1.00")
        order = {
            "id": f"order_{secrets.token_hex(7)}",
            "entity": "order",
            "amount": amount,
            "amount_paid": 0,
            "amount_due": amount,
            "currency": "INR",
            "receipt": data.get("receipt"),
            "status": "created",
            "attempts": 0,
            "notes": data.get("notes", {}),
            "created_at": int(time.time()),
        }
        self.orders[order["id"]] = order
        return web.json_response(order)

    async def _fetch(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._error(401, "BAD_REQUEST_ERROR", "Authentication failed")
        order = self.orders.get(request.match_info["id"])
        if order is None:
            return self._error(400, "BAD_REQUEST_ERROR", "The id provided does not exist")
        return web.json_response(order)

    # --- what Razorpay sends back ----------------------------------------------------------

    def checkout(self, order_id: str, payment_id: str | None = None) -> dict[str, str]:
        """The checkout success callback the browser posts to /wallet/recharge/verify."""
        payment_id = payment_id or f"pay_{secrets.token_hex(7)}"
        return {
            "razorpay_order_id": order_id,
            "razorpay_payment_id": payment_id,
            "razorpay_signature": payment_signature(self.key_secret, order_id, payment_id),
        }

    def webhook(
        self, event: str, order_id: str, payment_id: str, amount: int, **extra: Any
    ) -> tuple[bytes, dict[str, str]]:
        """A signed webhook: (raw body, headers)."""
        payment = {
            "id": payment_id,
            "entity": "payment",
            "order_id": order_id,
            "amount": amount,
            "currency": "INR",
            "status": "failed" if event == "payment.failed" else "captured",
        }
        payload: dict[str, Any] = {"payment": {"entity": payment}}
        if event == "order.paid":
            payload["order"] = {"entity": {"id": order_id, "amount": amount, "status": "paid"}}
        if event == "refund.processed":
            payload["refund"] = {
                "entity": {
                    "id": extra.get("refund_id", f"rfnd_{secrets.token_hex(7)}"),
                    "payment_id": payment_id,
                    "amount": amount,
                }
            }
        body = json.dumps(
            {
                "entity": "event",
                "event": event,
                "contains": list(payload),
                "payload": payload,
                "created_at": int(time.time()),
            }
        ).encode()
        headers = {
            "X-Razorpay-Signature": sign(self.webhook_secret, body),
            "X-Razorpay-Event-Id": extra.get("event_id", f"evt_{secrets.token_hex(7)}"),
            "Content-Type": "application/json",
        }
        return body, headers
