"""``GET /turn/credentials``: the ICE server list with a fresh TURN credential for the caller.

The credential is a TURN REST API credential (draft-uberti-behave-turn-rest-00 §2.2) that coturn
checks with its ``use-auth-secret`` (see ``turn/credentials.py``); the list has the shape of
WebRTC's ``RTCIceServer`` dictionaries, so a browser passes ``ice_servers`` unchanged to
``new RTCPeerConnection({iceServers})``. With no TURN configured the list is empty.
"""

from __future__ import annotations

import time

from aiohttp import web
from pydantic import BaseModel, Field

from api.auth import require_user
from api.errors import ApiError
from api.keys import RATE_LIMITER, TURN_SETTINGS
from api.openapi import operation
from turn.ice import build_ice_servers

routes = web.RouteTableDef()

#: Credentials one user may fetch per window. coturn's user-quota counts allocations per
#: username, and every credential has its own username (its expiry), so this limit is what
#: bounds one person's concurrent relay allocations (docs/DEPLOY.md).
CREDENTIALS_LIMIT = 30
CREDENTIALS_WINDOW_S = 60


class IceServerOut(BaseModel):
    """One ``RTCIceServer`` (W3C webrtc-pc §4.2.1)."""

    urls: list[str] = Field(description="stun:/turn:/turns: URIs (RFC 7064, RFC 7065)")
    username: str | None = Field(None, description="TURN username: <expiry unix time>:<user id>")
    credential: str | None = Field(
        None, description="TURN password: base64(HMAC-SHA1(secret, username))"
    )


class TurnCredentialsOut(BaseModel):
    ice_servers: list[IceServerOut]
    ttl_s: int = Field(description="Lifetime of the TURN credential in seconds")
    expires_at: int | None = Field(
        description="Unix time when the TURN credential expires; null without TURN"
    )


@routes.get("/turn/credentials")
@operation(
    "ICE servers with a fresh TURN credential",
    response=TurnCredentialsOut,
    auth="any",
    errors=(429,),
    tags=("turn",),
)
async def turn_credentials(request: web.Request) -> web.Response:
    """The caller's ICE servers; 401 without a valid access token, 429 past the per-user
    limit."""
    claims = await require_user(request)
    decision = await request.app[RATE_LIMITER].hit(
        f"turn:credentials:{claims.user_id}", CREDENTIALS_LIMIT, CREDENTIALS_WINDOW_S
    )
    if not decision.allowed:
        raise ApiError(
            429,
            "RATE_LIMITED",
            "too many TURN credential requests; try again later",
            {"retry_after_s": decision.retry_after_s, "scope": "user"},
            headers={"Retry-After": str(decision.retry_after_s)},
        )
    settings = request.app[TURN_SETTINGS]
    now = time.time()
    servers = build_ice_servers(settings, str(claims.user_id), now=now)
    body = TurnCredentialsOut(
        ice_servers=[IceServerOut.model_validate(server) for server in servers],
        ttl_s=settings.ttl_s,
        expires_at=int(now) + settings.ttl_s if settings.turn_urls else None,
    )
    payload = body.model_dump()
    # No "username": null on STUN entries: WebIDL would turn it into the string "null".
    payload["ice_servers"] = [s.model_dump(exclude_none=True) for s in body.ice_servers]
    # A credential is a secret for its lifetime: never cached by browsers or proxies.
    return web.json_response(payload, headers={"Cache-Control": "no-store"})
