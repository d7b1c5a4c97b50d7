"""Payment gateways: Razorpay through its official (synchronous) SDK, and a dev simulator.

The SDK call runs in a worker thread (`asyncio.to_thread`) bounded by a timeout on both sides:
`requests`' own timeout and `asyncio.wait_for`. Tests point the SDK at a local HTTP stand-in of
Razorpay's API through `base_url`. The simulator signs like Razorpay and is refused when
ENV=production.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any, Protocol

import razorpay

from billing.config import BillingSettings, RazorpaySettings
from billing.errors import GatewayUnavailable
from billing.signatures import payment_signature, sign


@dataclass(frozen=True, slots=True)
class GatewayOrder:
    id: str
    amount_paise: int
    currency: str


class PaymentGateway(Protocol):
    name: str
    """`razorpay` or `simulator` (stored on the order)."""
    key_id: str
    """Public key the checkout needs."""
    key_secret: str
    """Signs checkout callbacks."""
    webhook_secret: str
    """Signs webhooks."""

    async def create_order(
        self, amount_paise: int, receipt: str, notes: dict[str, str]
    ) -> GatewayOrder: ...


class RazorpayGateway:
    """Orders through the `razorpay` SDK."""

    name = "razorpay"

    def __init__(self, settings: RazorpaySettings) -> None:
        self._settings = settings
        self.key_id = settings.key_id
        self.key_secret = settings.key_secret
        self.webhook_secret = settings.webhook_secret
        self._client = razorpay.Client(
            auth=(settings.key_id, settings.key_secret), base_url=settings.base_url
        )

    async def create_order(
        self, amount_paise: int, receipt: str, notes: dict[str, str]
    ) -> GatewayOrder:
        data = {"amount": amount_paise, "currency": "INR", "receipt": receipt, "notes": notes}
        timeout = self._settings.timeout_seconds
        try:
            created: dict[str, Any] = await asyncio.wait_for(
                asyncio.to_thread(self._client.order.create, data, timeout=timeout),
                timeout + 1,
            )
        except (
            TimeoutError,
            OSError,
            razorpay.errors.BadRequestError,
            razorpay.errors.ServerError,
            razorpay.errors.GatewayError,
            ValueError,
        ) as exc:
            raise GatewayUnavailable(
                "payment gateway unavailable", reason=type(exc).__name__
            ) from exc
        except Exception as exc:  # requests' exceptions (not OSError subclasses everywhere)
            raise GatewayUnavailable(
                "payment gateway unavailable", reason=type(exc).__name__
            ) from exc
        if created.get("amount") != amount_paise or not created.get("id"):
            raise GatewayUnavailable("gateway returned an unexpected order")
        return GatewayOrder(
            str(created["id"]), int(created["amount"]), str(created.get("currency", "INR"))
        )


class SimulatorGateway:
    """Dev-only stand-in: creates orders locally and produces correctly signed callbacks."""

    name = "simulator"

    def __init__(self, production: bool) -> None:
        if production:
            raise RuntimeError("the dev gateway simulator is refused when ENV=production")
        self.key_id = "rzp_test_simulator"
        self.key_secret = "simulator-key-secret"
        self.webhook_secret = "simulator-webhook-secret"

    async def create_order(
        self, amount_paise: int, receipt: str, notes: dict[str, str]
    ) -> GatewayOrder:
        return GatewayOrder(f"order_sim{secrets.token_hex(7)}", amount_paise, "INR")

    def pay(self, order_id: str, amount_paise: int) -> dict[str, Any]:
        """What Razorpay would send after a successful payment: the checkout callback and the
        `payment.captured` webhook (body, signature, event id)."""
        payment_id = f"pay_sim{secrets.token_hex(7)}"
        body = json.dumps(
            {
                "entity": "event",
                "event": "payment.captured",
                "contains": ["payment"],
                "created_at": int(time.time()),
                "payload": {
                    "payment": {
                        "entity": {
                            "id": payment_id,
                            "entity": "payment",
                            "order_id": order_id,
                            "amount": amount_paise,
                            "currency": "INR",
                            "status": "captured",
                        }
                    }
                },
            },
            separators=(",", ":"),
        )
        return {
            "checkout": {
                "razorpay_order_id": order_id,
                "razorpay_payment_id": payment_id,
                "razorpay_signature": payment_signature(self.key_secret, order_id, payment_id),
            },
            "webhook": {
                "body": body,
                "signature": sign(self.webhook_secret, body.encode()),
                "event_id": f"evt_sim{secrets.token_hex(7)}",
            },
        }


def build_gateway(settings: BillingSettings) -> PaymentGateway | None:
    """Razorpay when keys are configured; else the simulator (None in production)."""
    if settings.razorpay.configured:
        return RazorpayGateway(settings.razorpay)
    if settings.production:
        return None
    return SimulatorGateway(production=False)
