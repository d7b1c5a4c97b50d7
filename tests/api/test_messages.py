"""Chat history and image uploads over HTTP (real app, real PostgreSQL, billing's service)."""

from __future__ import annotations

import struct
import zlib
from typing import Any

import pytest

from core.db import Database
from kundlinow.config import Settings
from tests.factories import auth
from tests.signalling.conftest import WorldFactory, world_factory
from tests.signalling.wsclient import WsClient


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    raw = b"\x00\xff\x00\x00"
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.fixture
def make_world(aiohttp_client: Any, settings: Settings, database: Database) -> WorldFactory:
    return world_factory(aiohttp_client, settings, database)


async def _active(world: Any) -> tuple[Any, Any, Any, WsClient, WsClient, str]:
    astro_user = await world.user("consultant")
    caller_user = await world.user(paise=100_000)
    astro, caller = await world.ws(astro_user), await world.ws(caller_user)
    ack = await caller.ok("consult_request", {"consultant_id": str(astro_user.id), "mode": "chat"})
    cid = ack["consultation"]["id"]
    await astro.event("consult_request")
    await astro.ok("accept", {"consultation_id": cid})
    await caller.ok("join_consult", {"consultation_id": cid})
    await astro.ok("join_consult", {"consultation_id": cid})
    return world.server, astro_user, caller_user, astro, caller, cid


async def test_history_pages_and_access(make_world: WorldFactory) -> None:
    world = await make_world(rate_per_s=1000, rate_burst=1000)
    server, astro_user, caller_user, _, caller, cid = await _active(world)
    for i in range(7):
        await caller.ok("message", {"consultation_id": cid, "client_id": f"m{i}", "text": f"{i}"})
    url = f"/consultations/{cid}/messages"
    page = await (await server.get(url, params={"limit": 3}, headers=auth(astro_user.token))).json()
    assert [m["seq"] for m in page["messages"]] == [5, 6, 7] and page["next_before"] == 5
    page = await (await server.get(url, params={"limit": 3, "before": 5},
                                   headers=auth(caller_user.token))).json()
    assert [m["text"] for m in page["messages"]] == ["1", "2", "3"]
    stranger = await world.user()
    response = await server.get(url, headers=auth(stranger.token))
    assert response.status == 403 and (await response.json())["error"]["code"] == "FORBIDDEN"
    assert (await server.get(url)).status == 401
    response = await server.get(url, params={"limit": 0}, headers=auth(astro_user.token))
    assert response.status == 422
    response = await server.get(
        "/consultations/not-a-uuid/messages", headers=auth(astro_user.token)
    )
    assert response.status == 404


async def test_image_upload_message_and_limits(make_world: WorldFactory) -> None:
    world = await make_world(upload_max_bytes=2048)
    server, astro_user, caller_user, astro, caller, cid = await _active(world)
    url = f"/consultations/{cid}/uploads"
    png = _png()
    response = await server.post(url, data=png,
                                 headers={**auth(caller_user.token), "Content-Type": "image/png"})
    assert response.status == 201, await response.text()
    upload = await response.json()
    sent = await caller.ok("message", {"consultation_id": cid, "client_id": "img",
                                       "upload_id": upload["upload_id"]})
    assert sent["message"]["kind"] == "image"
    got = await astro.event("message")
    assert got["message"]["upload_id"] == upload["upload_id"]
    fetched = await server.get(f"{url}/{upload['upload_id']}", headers=auth(astro_user.token))
    assert fetched.status == 200 and await fetched.read() == png
    assert fetched.headers["Content-Type"] == "image/png"
    # the other party cannot send someone else's upload as their own
    assert await astro.fail("message", {"consultation_id": cid, "client_id": "x",
                                        "upload_id": upload["upload_id"]}) == "UPLOAD_NOT_FOUND"
    # type, magic bytes and size limits
    bad_type = await server.post(url, data=b"hello",
                                 headers={**auth(caller_user.token), "Content-Type": "text/plain"})
    assert bad_type.status == 415
    liar = await server.post(url, data=b"GIF89a not a png",
                             headers={**auth(caller_user.token), "Content-Type": "image/png"})
    assert liar.status == 415
    big = await server.post(url, data=png + b"\x00" * 4096,
                            headers={**auth(caller_user.token), "Content-Type": "image/png"})
    assert big.status == 413
    assert (await big.json())["error"]["code"] == "PAYLOAD_TOO_LARGE"
    stranger = await world.user()
    response = await server.post(url, data=png,
                                 headers={**auth(stranger.token), "Content-Type": "image/png"})
    assert response.status == 403
