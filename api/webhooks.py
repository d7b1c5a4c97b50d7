"""POST /webhooks/razorpay: X-Razorpay-Signature over the raw body; de-duplicated by event id."""

from __future__ import annotations

from aiohttp import web

from api.keys import PAYMENTS, WEBHOOK_METRICS
from api.openapi import operation
from core.errors import CodedError

routes = web.RouteTableDef()


@routes.post("/webhooks/razorpay")
@operation(
    "Razorpay webhook (X-Razorpay-Signature over the raw body)",
    errors=(400, 404, 409),
    content_type=None,
    tags=("wallet",),
)
async def razorpay_webhook(request: web.Request) -> web.Response:
    """400 INVALID_SIGNATURE / INVALID_WEBHOOK / AMOUNT_MISMATCH; 200 when processed or a replay."""
    body = await request.read()
    outcome = "error"  # anything but a coded refusal: a failure of ours (500)
    try:
        result = await request.app[PAYMENTS].handle_webhook(
            body,
            request.headers.get("X-Razorpay-Signature", ""),
            request.headers.get("X-Razorpay-Event-Id") or None,
        )
        outcome = str(result.get("outcome", result["status"]))
    except CodedError as refused:
        outcome = refused.code.lower()
        raise
    finally:
        request.app[WEBHOOK_METRICS].observe(outcome)
    return web.json_response(result)
