"""Payout requests (consultants) and their approval (admins)."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, Field

from api.auth import require_user
from api.consultations import path_id
from api.keys import PAYOUTS
from api.openapi import operation
from api.validation import parse_body, parse_query

routes = web.RouteTableDef()


class PayoutRequest(BaseModel):
    amount_paise: int = Field(strict=True, ge=1, le=10_000_000_000)


class PayoutQuery(BaseModel):
    state: Literal["requested", "approved", "rejected", "posted", "voided", "failed"] | None = None


@routes.post("/payouts")
@operation(
    "Request a payout of earnings (min ₹1,000, one pending)",
    body=PayoutRequest,
    status=201,
    auth=("consultant",),
    errors=(402, 409, 422),
    tags=("payouts",),
)
async def request_payout(request: web.Request) -> web.Response:
    """Minimum ₹1,000, one pending at a time; reserves the amount of the earnings."""
    claims = await require_user(request, roles=("consultant",))
    body = await parse_body(request, PayoutRequest)
    payout = await request.app[PAYOUTS].request(claims.user_id, body.amount_paise)
    return web.json_response(payout.to_json(), status=201)


@routes.get("/payouts")
@operation("My payouts", auth=("consultant",), tags=("payouts",))
async def my_payouts(request: web.Request) -> web.Response:
    claims = await require_user(request, roles=("consultant",))
    items = await request.app[PAYOUTS].list_payouts(claims.user_id)
    return web.json_response({"items": [p.to_json() for p in items]})


@routes.get("/admin/payouts")
@operation("Admin: payouts", query=PayoutQuery, auth=("admin",), tags=("admin",))
async def admin_payouts(request: web.Request) -> web.Response:
    await require_user(request, roles=("admin",))
    q = parse_query(request, PayoutQuery)
    items = await request.app[PAYOUTS].list_payouts(None, q.state)
    return web.json_response({"items": [p.to_json() for p in items]})


@routes.post("/admin/payouts/{id}/approve")
@operation("Admin: approve a payout", auth=("admin",), errors=(404, 409), tags=("admin",))
async def approve_payout(request: web.Request) -> web.Response:
    claims = await require_user(request, roles=("admin",))
    payout = await request.app[PAYOUTS].decide(path_id(request), claims.user_id, approve=True)
    return web.json_response(payout.to_json())


@routes.post("/admin/payouts/{id}/reject")
@operation("Admin: reject a payout", auth=("admin",), errors=(404, 409), tags=("admin",))
async def reject_payout(request: web.Request) -> web.Response:
    claims = await require_user(request, roles=("admin",))
    payout = await request.app[PAYOUTS].decide(path_id(request), claims.user_id, approve=False)
    return web.json_response(payout.to_json())
