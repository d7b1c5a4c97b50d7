"""REST for consultations: request, read, accept/reject, end, and the admin refund."""

from __future__ import annotations

import uuid
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, Field

from api.auth import require_user
from api.errors import ApiError
from api.keys import BIRTH_PROFILES, CONSULTATIONS, DATABASE, HUB, MEDIA_STATS
from api.openapi import operation
from api.validation import parse_body
from api.wallet_push import push_wallet
from billing.consultations import Consultation, EndReason, Mode
from billing.refunds import refund_consultation

routes = web.RouteTableDef()


class ConsultationRequest(BaseModel):
    consultant_id: uuid.UUID
    mode: Mode
    birth_profile_id: uuid.UUID | None = None
    """One of the caller's birth profiles, shown with its chart to the astrologer."""


class EndRequest(BaseModel):
    reason: Literal["completed", "cancelled"] = "completed"


def path_id(request: web.Request, name: str = "id") -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError:
        raise ApiError(404, "NOT_FOUND", f"no such {name}") from None


def _visible(c: Consultation, user_id: uuid.UUID, role: str) -> None:
    if role != "admin" and user_id not in (c.caller_id, c.consultant_id):
        raise ApiError(404, "NOT_FOUND", "consultation not found")


@routes.post("/consultations")
@operation(
    "Request a consultation (holds the minimum minutes)",
    body=ConsultationRequest,
    status=201,
    auth=("user",),
    errors=(402, 403, 404, 409),
    tags=("consultations",),
)
async def create_consultation(request: web.Request) -> web.Response:
    """A caller requests a consultation (holds MIN_START_MINUTES of the rate)."""
    claims = await require_user(request, roles=("user",))
    body = await parse_body(request, ConsultationRequest)
    profile = body.birth_profile_id
    if profile is not None and not await request.app[BIRTH_PROFILES].owned(profile, claims.user_id):
        raise ApiError(404, "BIRTH_PROFILE_NOT_FOUND", "birth profile not found")
    # The same rule as the socket's consult_request (role, waitlist offers, timeout).
    view = await request.app[HUB].request_consultation(
        claims.user_id, claims.role, body.consultant_id, body.mode, birth_profile_id=profile
    )
    c = await request.app[CONSULTATIONS].get(view.id)
    return web.json_response(c.to_json(), status=201)


@routes.get("/consultations/{id}")
@operation("One consultation", auth="any", errors=(404,), tags=("consultations",))
async def get_consultation(request: web.Request) -> web.Response:
    claims = await require_user(request)
    c = await request.app[CONSULTATIONS].get(path_id(request))
    _visible(c, claims.user_id, claims.role)
    return web.json_response(c.to_json())


@routes.post("/consultations/{id}/accept")
@operation(
    "Accept a requested consultation (charges minute 1)",
    auth=("consultant",),
    errors=(404, 409),
    tags=("consultations",),
)
async def accept_consultation(request: web.Request) -> web.Response:
    claims = await require_user(request, roles=("consultant",))
    c = await request.app[CONSULTATIONS].accept(path_id(request), claims.user_id)
    return web.json_response(c.to_json())


@routes.post("/consultations/{id}/reject")
@operation(
    "Reject a requested consultation",
    auth=("consultant",),
    errors=(404, 409),
    tags=("consultations",),
)
async def reject_consultation(request: web.Request) -> web.Response:
    claims = await require_user(request, roles=("consultant",))
    c = await request.app[CONSULTATIONS].reject(path_id(request), claims.user_id)
    return web.json_response(c.to_json())


@routes.post("/consultations/{id}/end")
@operation(
    "End a consultation; returns its statement",
    body=EndRequest,
    auth="any",
    errors=(404, 409),
    tags=("consultations",),
)
async def end_consultation(request: web.Request) -> web.Response:
    """Either participant (or an admin) ends it; returns the settlement statement."""
    claims = await require_user(request)
    service = request.app[CONSULTATIONS]
    cid = path_id(request)
    c = await service.get(cid)
    _visible(c, claims.user_id, claims.role)
    body = await parse_body(request, EndRequest) if request.can_read_body else EndRequest()
    reason = EndReason.ADMIN if claims.role == "admin" else EndReason(body.reason)
    statement = await service.end(cid, reason, actor_id=claims.user_id)
    return web.json_response(statement.to_json())


class RefundRequest(BaseModel):
    amount_paise: int = Field(strict=True, ge=1)
    reason: str = Field(min_length=3, max_length=500)
    idempotency_key: str = Field(
        default_factory=lambda: uuid.uuid4().hex, min_length=8, max_length=100
    )


@routes.post("/admin/consultations/{id}/refund")
@operation(
    "Admin: refund all or part of a consultation to the wallet",
    body=RefundRequest,
    status=201,
    auth=("admin",),
    errors=(404, 409, 422),
    tags=("admin",),
)
async def refund(request: web.Request) -> web.Response:
    """Admin: refund all or part of what the caller paid (correcting transfer, audit logged)."""
    claims = await require_user(request, roles=("admin",))
    body = await parse_body(request, RefundRequest)
    done = await refund_consultation(
        request.app[DATABASE],
        path_id(request),
        body.amount_paise,
        body.reason,
        claims.user_id,
        body.idempotency_key,
    )
    if not done.replayed:
        caller_id = (await request.app[CONSULTATIONS].get(done.consultation_id)).caller_id
        await push_wallet(request.app, caller_id, "refund")
    return web.json_response(
        {
            "consultation_id": str(done.consultation_id),
            "amount_paise": done.amount_paise,
            "consultant_part_paise": done.consultant_part_paise,
            "platform_part_paise": done.platform_part_paise,
            "transfer_id": str(done.transfer_id),
            "replayed": done.replayed,
        },
        status=200 if done.replayed else 201,
    )


@routes.get("/admin/consultations/{id}/media")
@operation(
    "Admin: live media stats of a consultation's participants on the hosting node's SFU",
    auth=("admin",),
    errors=(404,),
    tags=("admin",),
)
async def media_stats(request: web.Request) -> web.Response:
    """Per participant: bitrate, loss, RTT, packets/frames forwarded, keyframe requests.
    Empty while nobody is connected to the SFU. With several nodes, asked of the node that
    hosts the room's media (signalling.media_routing)."""
    await require_user(request, roles=("admin",))
    consultation = await request.app[CONSULTATIONS].get(path_id(request))
    room = str(consultation.id)
    participants = await request.app[MEDIA_STATS](room)
    return web.json_response({"consultation_id": room, "participants": participants})
