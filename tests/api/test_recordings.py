"""Admin access to recordings: list with signed URLs, Range content, 403/404, deletion."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from api.keys import CONSULTATIONS, RECORDER
from core.db import Database
from recording import signing
from recording.catalog import NewFile
from recording.config import RecordingSettings
from recording.writer import FileResult
from tests.billing.helpers import grant
from tests.conftest import TEST_JWT_SECRET, AppFactory
from tests.factories import TestUser, auth, create_user

Client = TestClient[Any, Any]


@pytest.fixture
async def app_client(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]], make_app: AppFactory,
    tmp_path: Path,
) -> Client:
    return await aiohttp_client(
        make_app(recording=RecordingSettings(directory=tmp_path / "rec", mode="off"))
    )


async def _consult_with_file(client: Client, database: Database, settings: Any) -> dict[str, Any]:
    caller = await create_user(database, settings)
    astro = await create_user(database, settings, "consultant")
    await grant(database, caller.id, 1_000_000)
    service = client.app[CONSULTATIONS]
    consultation = await service.request(caller.id, astro.id, "video")
    await service.accept(consultation.id, astro.id)
    recorder = client.app[RECORDER]
    key = f"{consultation.id}/caller-video-000.webm"
    data = os.urandom(10_000)
    path = recorder.store.staging_path(key)
    path.write_bytes(data)
    file_id = uuid.uuid4()
    await recorder.catalog.file_opened(NewFile(
        file_id, consultation.id, "caller", "video", "vp8", 0, key, dt.datetime.now(dt.UTC), 120,
    ))
    await recorder.catalog.file_finished(FileResult(key, "complete", 5000, 120, len(data), "ab"))
    return {"cid": consultation.id, "id": file_id, "data": data, "caller": caller,
            "astro": astro, "key": key}


async def test_admin_lists_and_reads_with_ranges_through_a_signed_url(
    app_client: Client, database: Database, settings: Any,
) -> None:
    made = await _consult_with_file(app_client, database, settings)
    admin = await create_user(database, settings, "admin")
    r = await app_client.get(f"/admin/consultations/{made['cid']}/recordings",
                             headers=auth(admin.token))
    assert r.status == 200
    [item] = (await r.json())["items"]
    assert item["id"] == str(made["id"]) and item["kind"] == "video"
    assert item["party"] == "caller" and item["offset_ms"] == 120 and item["bytes"] == 10_000
    url = item["url"]
    data = made["data"]
    full = await app_client.get(url)  # no bearer: the signature is the credential
    assert full.status == 200 and await full.read() == data
    assert full.headers["Accept-Ranges"] == "bytes"
    assert full.headers["Content-Type"] == "video/webm"
    part = await app_client.get(url, headers={"Range": "bytes=100-1099"})
    assert part.status == 206 and await part.read() == data[100:1100]
    assert part.headers["Content-Range"] == "bytes 100-1099/10000"
    tail = await app_client.get(url, headers={"Range": "bytes=-50"})
    assert tail.status == 206 and await tail.read() == data[-50:]
    beyond = await app_client.get(url, headers={"Range": "bytes=20000-"})
    assert beyond.status == 416
    head = await app_client.head(url)
    assert head.status == 200 and head.headers["Content-Length"] == "10000"
    assert await head.read() == b""
    bearer = await app_client.get(f"/recordings/{made['id']}/content", headers=auth(admin.token))
    assert bearer.status == 200
    accesses = await database.pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'recording_accessed' AND subject_id = $1",
        str(made["id"]),
    )
    assert accesses == 6


async def test_a_resumed_download_gets_the_rest_only_of_the_same_file(
    app_client: Client, database: Database, settings: Any,
) -> None:
    """RFC 9110 §13.1.5: If-Range with the file's ETag (its SHA-256) resumes; any other
    validator (the file finalised or recovered since, a weak tag, a date) gets it whole."""
    made = await _consult_with_file(app_client, database, settings)
    admin = await create_user(database, settings, "admin")
    url = f"/recordings/{made['id']}/content"
    data = made["data"]
    full = await app_client.get(url, headers=auth(admin.token))
    etag = full.headers["ETag"]
    assert etag == '"ab"'  # the catalogue's SHA-256 of the file
    rest = await app_client.get(url, headers={**auth(admin.token), "Range": "bytes=4000-",
                                              "If-Range": etag})
    assert rest.status == 206 and await rest.read() == data[4000:]
    for stale in ('"cd"', 'W/"ab"', "Wed, 02 Dec 2026 01:00:00 GMT"):
        whole = await app_client.get(url, headers={**auth(admin.token), "Range": "bytes=4000-",
                                                   "If-Range": stale})
        assert whole.status == 200, stale
        assert await whole.read() == data and "Content-Range" not in whole.headers
    # a file still being recorded has no hash yet: no ETag, and If-Range never matches
    await database.pool.execute(
        "UPDATE recordings SET status = 'recording', sha256 = NULL WHERE id = $1", made["id"]
    )
    live = await app_client.get(url, headers={**auth(admin.token), "Range": "bytes=0-9"})
    assert live.status == 206 and "ETag" not in live.headers
    resumed = await app_client.get(url, headers={**auth(admin.token), "Range": "bytes=4000-",
                                                 "If-Range": etag})
    assert resumed.status == 200 and await resumed.read() == data


async def test_non_admins_forged_expired_unknown_and_path_tricks(
    app_client: Client, database: Database, settings: Any,
) -> None:
    made = await _consult_with_file(app_client, database, settings)
    caller: TestUser = made["caller"]
    rid = made["id"]
    assert (await app_client.get(f"/admin/consultations/{made['cid']}/recordings",
                                 headers=auth(caller.token))).status == 403
    assert (await app_client.get(f"/recordings/{rid}/content",
                                 headers=auth(caller.token))).status == 403
    key = signing.url_key(TEST_JWT_SECRET)
    admin_id = uuid.uuid4()
    expired = signing.signed_path(key, rid, admin_id, 1_000)
    r = await app_client.get(expired)
    assert r.status == 403 and (await r.json())["error"]["code"] == "URL_EXPIRED"
    good = signing.signed_path(key, rid, admin_id, 4_000_000_000)
    forged = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    r = await app_client.get(forged)
    assert r.status == 403 and (await r.json())["error"]["code"] == "BAD_SIGNATURE"
    other = signing.signed_path(key, uuid.uuid4(), admin_id, 4_000_000_000)  # another id's sig
    assert (await app_client.get(other.replace(str(other.split("/")[2]), str(rid)))).status == 403
    admin = await create_user(database, settings, "admin")
    assert (await app_client.get(f"/recordings/{uuid.uuid4()}/content",
                                 headers=auth(admin.token))).status == 404
    for trick in (f"/recordings/..%2F..%2F{made['key']}/content",
                  f"/recordings/{made['cid']}%2Fcaller-video-000.webm/content",
                  "/recordings/..%2F..%2Fetc%2Fpasswd/content"):
        assert (await app_client.get(trick, headers=auth(admin.token))).status == 404


async def test_participants_read_only_their_own_when_allowed(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]], make_app: AppFactory,
    database: Database, settings: Any, tmp_path: Path,
) -> None:
    client = await aiohttp_client(make_app(recording=RecordingSettings(
        directory=tmp_path / "rec", mode="off", participant_access=True)))
    made = await _consult_with_file(client, database, settings)
    stranger = await create_user(database, settings)
    url = f"/recordings/{made['id']}/content"
    assert (await client.get(url, headers=auth(made["caller"].token))).status == 200
    assert (await client.get(url, headers=auth(made["astro"].token))).status == 200
    assert (await client.get(url, headers=auth(stranger.token))).status == 403


async def test_admin_deletes_a_consultations_recordings_with_a_reason(
    app_client: Client, database: Database, settings: Any,
) -> None:
    made = await _consult_with_file(app_client, database, settings)
    admin = await create_user(database, settings, "admin")
    path = f"/admin/consultations/{made['cid']}/recordings"
    r = await app_client.delete(path, headers=auth(admin.token), json={})
    assert r.status == 422
    r = await app_client.delete(path, headers=auth(admin.token), json={"reason": "GDPR request"})
    assert r.status == 200 and (await r.json())["deleted"] == 1
    assert not app_client.app[RECORDER].store.exists(made["key"])
    assert await database.pool.fetchval("SELECT count(*) FROM recordings") == 0
    details = await database.pool.fetchval(
        "SELECT details->>'reason' FROM audit_log WHERE action = 'recordings_deleted'"
        " AND subject_id = $1", str(made["cid"]),
    )
    assert details == "GDPR request"
    assert (await app_client.get(path, headers=auth(admin.token))).status == 200
    r = await app_client.get(f"/admin/consultations/{uuid.uuid4()}/recordings",
                             headers=auth(admin.token))
    assert r.status == 404
