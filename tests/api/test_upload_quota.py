"""Upload quotas per consultation and per user (issue 11, point 11): 413/429, stable codes,
and atomic under concurrent uploads."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from core.db import Database
from kundlinow.config import Settings
from signalling.upload_quota import UploadQuota
from tests.api.test_messages import _active, _png
from tests.factories import auth
from tests.signalling.conftest import WorldFactory, world_factory


@pytest.fixture
def make_world(aiohttp_client: Any, settings: Settings, database: Database) -> WorldFactory:
    return world_factory(aiohttp_client, settings, database)


async def _upload(server: Any, url: str, token: str, data: bytes) -> tuple[int, dict[str, Any]]:
    headers = {**auth(token), "Content-Type": "image/png"}
    response = await server.post(url, data=data, headers=headers)
    body = await response.json()
    if response.status == 429:
        assert int(response.headers["Retry-After"]) >= 1
    return response.status, body


async def test_concurrent_uploads_cannot_pass_the_consultation_count(
    make_world: WorldFactory, database: Database
) -> None:
    world = await make_world(upload_quota=UploadQuota(consultation_count=3))
    server, astro_user, caller_user, _, _, cid = await _active(world)
    url = f"/consultations/{cid}/uploads"
    token = {0: caller_user.token, 1: astro_user.token}
    results = await asyncio.gather(
        *(_upload(server, url, token[n % 2], _png()) for n in range(10))
    )
    statuses = sorted(status for status, _ in results)
    assert statuses == [201] * 3 + [413] * 7
    refused = next(body for status, body in results if status == 413)
    assert refused["error"]["code"] == "UPLOAD_QUOTA_EXCEEDED"
    assert refused["error"]["details"] == {"scope": "consultation", "limit": "count", "max": 3}
    stored = await database.pool.fetchval(
        "SELECT count(*) FROM chat_uploads WHERE consultation_id = $1::uuid", cid
    )
    assert stored == 3


async def test_the_consultation_byte_quota(make_world: WorldFactory) -> None:
    png = _png()
    world = await make_world(upload_quota=UploadQuota(consultation_bytes=2 * len(png) + 1))
    server, _, caller_user, _, _, cid = await _active(world)
    url = f"/consultations/{cid}/uploads"
    assert [(await _upload(server, url, caller_user.token, png))[0] for _ in range(3)] == [
        201, 201, 413,
    ]


async def test_the_per_user_quota_answers_429_with_retry_after(
    make_world: WorldFactory,
) -> None:
    png = _png()
    world = await make_world(
        upload_quota=UploadQuota(user_count=2, user_bytes=10 * len(png), user_window_s=3600)
    )
    server, astro_user, caller_user, _, _, cid = await _active(world)
    url = f"/consultations/{cid}/uploads"
    assert (await _upload(server, url, caller_user.token, png))[0] == 201
    assert (await _upload(server, url, caller_user.token, png))[0] == 201
    status, body = await _upload(server, url, caller_user.token, png)
    assert status == 429 and body["error"]["code"] == "UPLOAD_RATE_LIMITED"
    assert body["error"]["details"]["scope"] == "user"
    assert 1 <= body["error"]["details"]["retry_after_s"] <= 3600
    # The other party has a quota of their own.
    assert (await _upload(server, url, astro_user.token, png))[0] == 201


async def test_the_per_user_byte_quota(make_world: WorldFactory) -> None:
    png = _png()
    world = await make_world(upload_quota=UploadQuota(user_bytes=len(png) + 1))
    server, _, caller_user, _, _, cid = await _active(world)
    url = f"/consultations/{cid}/uploads"
    assert (await _upload(server, url, caller_user.token, png))[0] == 201
    status, body = await _upload(server, url, caller_user.token, png)
    assert status == 429 and body["error"]["details"]["limit"] == "bytes"
