"""GET /admin/consultations/{id}/media: the SFU's per-participant stats, for admins only."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp.test_utils import TestClient

from api.keys import CONSULTATIONS, MEDIA
from billing.consultations import Mode
from core.db import Database
from kundlinow.config import Settings
from tests.billing.helpers import grant
from tests.factories import auth, create_user


async def test_admin_sees_media_stats_others_do_not(
    client: TestClient[Any, Any], database: Database, settings: Settings
) -> None:
    caller = await create_user(database, settings, "user")
    astrologer = await create_user(database, settings, "consultant")
    admin = await create_user(database, settings, "admin")
    await grant(database, caller.id, 100_000)
    service = client.app[CONSULTATIONS]
    consultation = await service.request(caller.id, astrologer.id, Mode.VIDEO)
    await service.accept(consultation.id, astrologer.id)
    url = f"/admin/consultations/{consultation.id}/media"

    assert (await client.get(url)).status == 401
    forbidden = await client.get(url, headers=auth(caller.token))
    assert forbidden.status == 403
    missing = await client.get(
        f"/admin/consultations/{uuid.uuid4()}/media", headers=auth(admin.token)
    )
    assert missing.status == 404
    empty = await client.get(url, headers=auth(admin.token))
    assert await empty.json() == {"consultation_id": str(consultation.id), "participants": {}}

    await client.app[MEDIA].join(str(consultation.id), str(caller.id))
    joined = await (await client.get(url, headers=auth(admin.token))).json()
    assert list(joined["participants"]) == [str(caller.id)]
    await client.app[MEDIA].close_room(str(consultation.id))
