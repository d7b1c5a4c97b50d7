"""POST /consultations/{id}/rating: the caller rates a finished, paid consultation once."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp.test_utils import TestClient

from api.keys import CONSULTATIONS
from billing.consultations import EndReason, Mode
from core.db import Database
from kundlinow.config import Settings
from tests.billing.helpers import grant, served
from tests.factories import auth, create_user


async def test_caller_rates_once_and_the_aggregate_follows(
    client: TestClient[Any, Any], database: Database, settings: Settings
) -> None:
    caller = await create_user(database, settings, "user")
    stranger = await create_user(database, settings, "user")
    astrologer = await create_user(database, settings, "consultant")
    await grant(database, caller.id, 100_000)
    service = client.app[CONSULTATIONS]
    consultation = await service.request(caller.id, astrologer.id, Mode.CHAT)
    url = f"/consultations/{consultation.id}/rating"

    await service.accept(consultation.id, astrologer.id)  # minute 1 charged, still active
    await served(database, consultation.id)  # the astrologer answered (else it is refunded)
    early = await client.post(url, json={"stars": 5}, headers=auth(caller.token))
    assert (early.status, (await early.json())["error"]["code"]) == (409, "NOT_RATEABLE")
    await service.end(consultation.id, EndReason.COMPLETED, actor_id=caller.id)

    invalid = await client.post(url, json={"stars": 6}, headers=auth(caller.token))
    assert invalid.status == 422
    not_theirs = await client.post(url, json={"stars": 1}, headers=auth(stranger.token))
    assert not_theirs.status == 404
    wrong_role = await client.post(url, json={"stars": 5}, headers=auth(astrologer.token))
    assert wrong_role.status == 403
    missing = await client.post(
        f"/consultations/{uuid.uuid4()}/rating", json={"stars": 5}, headers=auth(caller.token)
    )
    assert missing.status == 404

    rated = await client.post(
        url, json={"stars": 4, "comment": "clear and kind, call me on 98765 43210"},
        headers=auth(caller.token),
    )
    assert rated.status == 201
    # contact details are masked as in chat: the comment is stored and answered masked
    comment = (await rated.json())["comment"]
    assert comment.startswith("clear and kind") and "98765" not in comment
    stored = await database.pool.fetchval(
        "SELECT comment FROM consultation_ratings WHERE consultation_id = $1", consultation.id
    )
    assert stored == comment
    again = await client.post(url, json={"stars": 1}, headers=auth(caller.token))
    assert (again.status, (await again.json())["error"]["code"]) == (409, "ALREADY_RATED")

    profile = await (await client.get(f"/consultants/{astrologer.id}")).json()
    assert (profile["rating"], profile["rating_count"]) == (4.0, 1)
