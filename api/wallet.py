"""Wallet REST: balance and holds, transactions, Razorpay recharge and verify, earnings, and
the admin wallet views. The dev gateway simulator route exists only without Razorpay keys."""

from __future__ import annotations

import uuid

from aiohttp import web
from pydantic import BaseModel, Field

from api.auth import require_user
from api.consultations import path_id
from api.keys import PAYMENTS, WALLETS
from api.openapi import operation
from api.validation import parse_body, parse_query
from billing.errors import SimulatorDisabled
from billing.gateway import SimulatorGateway
from billing.model import AccountKind

routes = web.RouteTableDef()


class RechargeRequest(BaseModel):
    amount_paise: int = Field(
        strict=True, ge=100, le=10_000_000, description="₹1 to ₹1,00,000 in paise"
    )


class VerifyRequest(BaseModel):
    razorpay_order_id: str = Field(min_length=1, max_length=64)
    razorpay_payment_id: str = Field(min_length=1, max_length=64)
    razorpay_signature: str = Field(min_length=1, max_length=256)


class SimulateRequest(BaseModel):
    order_id: str = Field(min_length=1, max_length=64)


class PageQuery(BaseModel):
    limit: int = Field(default=20, ge=1, le=100)
    before: int | None = Field(default=None, ge=1)


@routes.get("/wallet")
@operation("Wallet balance, available and open holds", auth="any", tags=("wallet",))
async def get_wallet(request: web.Request) -> web.Response:
    """Balance, available (= balance - open holds) and the open holds."""
    claims = await require_user(request)
    return web.json_response(await request.app[WALLETS].summary(claims.user_id))


@routes.get("/wallet/transactions")
@operation(
    "Wallet ledger entries, newest first",
    query=PageQuery,
    auth="any",
    errors=(422,),
    tags=("wallet",),
)
async def wallet_transactions(request: web.Request) -> web.Response:
    """Ledger entries of the caller's wallet, newest first; page with `before`."""
    claims = await require_user(request)
    q = parse_query(request, PageQuery)
    page = await request.app[WALLETS].transactions(claims.user_id, limit=q.limit, before=q.before)
    return web.json_response(page)


@routes.post("/wallet/recharge")
@operation(
    "Create a Razorpay order for a recharge (₹1–₹1,00,000)",
    body=RechargeRequest,
    status=201,
    auth="any",
    errors=(422, 502),
    tags=("wallet",),
)
async def recharge(request: web.Request) -> web.Response:
    """Create a Razorpay order for a recharge; the client opens checkout with it."""
    claims = await require_user(request)
    body = await parse_body(request, RechargeRequest)
    order, key_id = await request.app[PAYMENTS].create_order(claims.user_id, body.amount_paise)
    return web.json_response({**order.to_json(), "key_id": key_id}, status=201)


@routes.post("/wallet/recharge/verify")
@operation(
    "Verify the checkout signature against the stored order and credit once",
    body=VerifyRequest,
    auth="any",
    errors=(400, 404, 409, 502),
    tags=("wallet",),
)
async def verify_recharge(request: web.Request) -> web.Response:
    """Checkout callback: the signature is checked against the stored order; credits once."""
    claims = await require_user(request)
    body = await parse_body(request, VerifyRequest)
    order, outcome = await request.app[PAYMENTS].verify(
        claims.user_id, body.razorpay_order_id, body.razorpay_payment_id, body.razorpay_signature
    )
    wallet = await request.app[WALLETS].summary(claims.user_id)
    return web.json_response(
        {
            "order": order.to_json(),
            "outcome": outcome.value,
            "balance_paise": wallet["balance_paise"],
        }
    )


@routes.post("/wallet/recharge/simulate")
@operation(
    "Dev gateway simulator: pay an order, get signed callbacks (not in production)",
    body=SimulateRequest,
    auth="any",
    errors=(404,),
    tags=("wallet",),
)
async def simulate_payment(request: web.Request) -> web.Response:
    """Dev only (no Razorpay keys, never in production): "pay" an order and get the signed
    checkout callback and `payment.captured` webhook Razorpay would send."""
    claims = await require_user(request)
    payments = request.app[PAYMENTS]
    gateway = payments.gateway
    if not isinstance(gateway, SimulatorGateway):
        raise SimulatorDisabled("the gateway simulator is not enabled")
    body = await parse_body(request, SimulateRequest)
    order = await payments.order(claims.user_id, body.order_id)
    return web.json_response(gateway.pay(order.gateway_order_id, order.amount_paise))


@routes.get("/earnings")
@operation(
    "Consultant earnings balance and entries",
    query=PageQuery,
    auth=("consultant",),
    tags=("wallet",),
)
async def earnings(request: web.Request) -> web.Response:
    """A consultant's earnings balance (available excludes pending payouts) and entries."""
    claims = await require_user(request, roles=("consultant",))
    q = parse_query(request, PageQuery)
    wallets = request.app[WALLETS]
    summary = await wallets.summary(claims.user_id, AccountKind.EARNINGS)
    page = await wallets.transactions(
        claims.user_id, AccountKind.EARNINGS, limit=q.limit, before=q.before
    )
    return web.json_response({**summary, "transactions": page})


@routes.get("/admin/wallets/{user_id}")
@operation("Admin: a user's wallet and earnings", auth=("admin",), errors=(404,), tags=("admin",))
async def admin_wallet(request: web.Request) -> web.Response:
    await require_user(request, roles=("admin",))
    user_id: uuid.UUID = path_id(request, "user_id")
    wallets = request.app[WALLETS]
    return web.json_response(
        {
            "user_id": str(user_id),
            "wallet": await wallets.summary(user_id),
            "earnings": await wallets.summary(user_id, AccountKind.EARNINGS),
        }
    )


@routes.get("/admin/wallets/{user_id}/transactions")
@operation(
    "Admin: a user's wallet entries",
    query=PageQuery,
    auth=("admin",),
    errors=(404,),
    tags=("admin",),
)
async def admin_wallet_transactions(request: web.Request) -> web.Response:
    await require_user(request, roles=("admin",))
    q = parse_query(request, PageQuery)
    page = await request.app[WALLETS].transactions(
        path_id(request, "user_id"), limit=q.limit, before=q.before
    )
    return web.json_response(page)
