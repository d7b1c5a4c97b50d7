"""Tell a user's open apps that their wallet changed when someone else changed it (an admin
refund), so the balance on screen updates without a reload: a ``wallet`` socket event with the
``GET /wallet`` body, on every node that holds a socket of theirs."""

from __future__ import annotations

import uuid

from aiohttp import web

from api.keys import HUB, WALLETS
from signalling import protocol


async def push_wallet(app: web.Application, user_id: uuid.UUID, reason: str) -> None:
    hub = app.get(HUB)
    if hub is None:  # an app without the signalling hub (some tests): nobody to tell
        return
    summary = await app[WALLETS].summary(user_id)
    await hub.router.to_users([user_id], protocol.event("wallet", {**summary, "reason": reason}))
