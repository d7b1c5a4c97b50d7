"""Birth profiles over HTTP: CRUD, places, charts, 400 codes, access and audit, sealed rows."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest

from api.keys import RATE_LIMITER
from core.db import Database
from core.logconfig import configure_logging
from kundlinow.config import Settings
from tests.billing.helpers import grant
from tests.factories import TestUser, auth, create_user
from tests.signalling.conftest import world_factory

MUMBAI_1990 = {"name": "Asha Rao", "gender": "female", "date": "1990-05-17", "time": "10:00"}


@pytest.fixture
async def caller(database: Database, settings: Settings) -> TestUser:
    return await create_user(database, settings, "user")


async def _mumbai_id(client: Any, user: TestUser) -> int:
    found = await client.get("/places", params={"q": "mumb"}, headers=auth(user.token))
    assert found.status == 200
    items = (await found.json())["items"]
    assert items[0]["name"] == "Mumbai, India"
    return int(items[0]["id"])


async def _create(client: Any, user: TestUser, **fields: Any) -> dict[str, Any]:
    body = {**MUMBAI_1990, "place_id": await _mumbai_id(client, user), **fields}
    created = await client.post("/birth-profiles", json=body, headers=auth(user.token))
    assert created.status == 201, await created.text()
    result: dict[str, Any] = await created.json()
    return result


async def test_profile_crud_and_chart(client: Any, caller: TestUser) -> None:
    profile = await _create(client, caller)
    assert profile["utc"] == "1990-05-17T04:30:00+00:00"
    assert profile["utc_offset"] == "+05:30"
    assert profile["place"]["time_zone"] == "Asia/Kolkata"
    listed = await (await client.get("/birth-profiles", headers=auth(caller.token))).json()
    assert [p["id"] for p in listed["items"]] == [profile["id"]]

    chart = await client.get(f"/birth-profiles/{profile['id']}/chart", headers=auth(caller.token))
    assert chart.status == 200
    data = await chart.json()
    assert [g["name"] for g in data["grahas"]][:2] == ["sun", "moon"]
    assert data["unreliable"] == []
    assert len(data["dashas"]) == 9
    for style in ("north", "south"):
        svg = await client.get(
            f"/birth-profiles/{profile['id']}/chart.svg",
            params={"style": style},
            headers=auth(caller.token),
        )
        assert svg.status == 200
        assert svg.content_type == "image/svg+xml"
        assert (await svg.text()).startswith("<svg")

    changed = await client.put(
        f"/birth-profiles/{profile['id']}",
        json={**MUMBAI_1990, "time": None, "latitude": 27.7172, "longitude": 85.324,
              "place_name": "Kathmandu"},
        headers=auth(caller.token),
    )  # fmt: skip
    assert changed.status == 200
    assert (await changed.json())["utc_offset"] == "+05:45"  # Nepal: +5:45 since 1986
    chart = await client.get(f"/birth-profiles/{profile['id']}/chart", headers=auth(caller.token))
    assert {"ascendant", "houses"} <= set((await chart.json())["unreliable"])


async def test_rows_hold_no_clear_text_and_delete_is_for_good(
    client: Any, caller: TestUser, database: Database
) -> None:
    profile = await _create(client, caller, name="Zorawar Unique-Name")
    rows = await database.pool.fetch("SELECT * FROM birth_profiles")
    raw = b"".join(
        value if isinstance(value, bytes) else str(value).encode()
        for row in rows
        for value in row.values()
    )
    for clear in (b"Zorawar", b"1990-05-17", b"10:00", b"Mumbai", b"Asia/Kolkata", b"female"):
        assert clear not in raw
    gone = await client.delete(f"/birth-profiles/{profile['id']}", headers=auth(caller.token))
    assert gone.status == 204
    assert await database.pool.fetchval("SELECT count(*) FROM birth_profiles") == 0
    again = await client.get(f"/birth-profiles/{profile['id']}", headers=auth(caller.token))
    assert again.status == 404


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"date": "2023-02-30"}, "INVALID_DATE"),
        ({"date": "17/05/1990"}, "INVALID_DATE"),
        ({"date": "1850-01-01"}, "DATE_OUT_OF_RANGE"),
        ({"date": "2999-01-01"}, "DATE_OUT_OF_RANGE"),
        ({"time": "25:10"}, "INVALID_TIME"),
        ({"time": "10:00+05:30"}, "INVALID_TIME"),
        ({"place_id": 987654321987}, "UNKNOWN_PLACE"),
        ({"place_id": None}, "UNKNOWN_PLACE"),
        ({"place_id": None, "latitude": 95.0, "longitude": 10.0}, "COORDINATES_OUT_OF_RANGE"),
        ({"place_id": None, "latitude": 10.0, "longitude": 190.0}, "COORDINATES_OUT_OF_RANGE"),
        (
            {
                "place_id": None,
                "latitude": 51.5,
                "longitude": -0.12,
                "date": "2021-03-28",
                "time": "01:30",
            },
            "TIME_DOES_NOT_EXIST",
        ),
    ],
)
async def test_bad_birth_details_get_400_with_a_stable_code(
    client: Any, caller: TestUser, fields: dict[str, Any], code: str
) -> None:
    body = {**MUMBAI_1990, "place_id": await _mumbai_id(client, caller), **fields}
    refused = await client.post("/birth-profiles", json=body, headers=auth(caller.token))
    assert refused.status == 400
    assert (await refused.json())["error"]["code"] == code


async def test_typed_coordinates_and_their_errors(client: Any, caller: TestUser) -> None:
    at = await client.get(
        "/places/at", params={"latitude": "27.7", "longitude": "85.3"}, headers=auth(caller.token)
    )
    assert (await at.json())["time_zone"] == "Asia/Kathmandu"
    bad = await client.get(
        "/places/at", params={"latitude": "-91", "longitude": "0"}, headers=auth(caller.token)
    )
    assert bad.status == 400
    assert (await bad.json())["error"]["code"] == "COORDINATES_OUT_OF_RANGE"


async def test_access_astrologer_of_the_consultation_admins_and_nobody_else(
    client: Any, caller: TestUser, database: Database, settings: Settings
) -> None:
    profile = await _create(client, caller)
    pid = profile["id"]
    astrologer = await create_user(database, settings, "consultant")
    other_astrologer = await create_user(database, settings, "consultant")
    other_caller = await create_user(database, settings, "user")
    admin = await create_user(database, settings, "admin")
    await grant(database, caller.id, 100_000)

    def urls(profile_id: str) -> list[str]:
        base = f"/birth-profiles/{profile_id}"
        return [base, base + "/chart", base + "/chart.svg"]

    for outsider in (astrologer, other_astrologer, other_caller):
        for url in urls(pid):
            denied = await client.get(url, headers=auth(outsider.token))
            assert denied.status == 403, (url, outsider.role)

    # Someone else's profile cannot be used to start a consultation.
    stolen = await client.post(
        "/consultations",
        json={"consultant_id": str(astrologer.id), "mode": "chat", "birth_profile_id": pid},
        headers=auth(other_caller.token),
    )
    assert stolen.status == 404
    assert (await stolen.json())["error"]["code"] == "BIRTH_PROFILE_NOT_FOUND"

    started = await client.post(
        "/consultations",
        json={"consultant_id": str(astrologer.id), "mode": "chat", "birth_profile_id": pid},
        headers=auth(caller.token),
    )
    assert started.status == 201, await started.text()
    cid = (await started.json())["id"]
    for url in [*urls(pid), f"/consultations/{cid}/birth-profile"]:
        assert (await client.get(url, headers=auth(astrologer.token))).status == 200, url
        assert (await client.get(url, headers=auth(admin.token))).status == 200, url
        assert (await client.get(url, headers=auth(other_astrologer.token))).status == 403, url
    seen = await (
        await client.get(f"/consultations/{cid}/birth-profile", headers=auth(astrologer.token))
    ).json()
    assert seen["profile"]["name"] == "Asha Rao"
    assert seen["chart"]["ascendant"]["rashi"] >= 1

    audited = await database.pool.fetch(
        "SELECT actor_id, action, details FROM audit_log WHERE subject_id = $1", pid
    )
    readers = {(r["actor_id"], r["action"]) for r in audited}
    assert (astrologer.id, "birth_profile_read") in readers
    assert (admin.id, "birth_profile_read") in readers
    assert (other_astrologer.id, "birth_profile_read_refused") in readers
    assert caller.id not in {r["actor_id"] for r in audited}  # the owner's reads are not logged

    # A rejected request is not history: the astrologer loses access.
    rejected = await client.post(f"/consultations/{cid}/reject", headers=auth(astrologer.token))
    assert rejected.status == 200
    assert (await client.get(urls(pid)[0], headers=auth(astrologer.token))).status == 403


async def test_unknown_ids_are_404(client: Any, caller: TestUser) -> None:
    for url in (f"/birth-profiles/{uuid.uuid4()}", "/birth-profiles/not-a-uuid",
                f"/consultations/{uuid.uuid4()}/birth-profile"):  # fmt: skip
        missing = await client.get(url, headers=auth(caller.token))
        assert missing.status == 404
        assert (await missing.json())["error"]["code"] == "BIRTH_PROFILE_NOT_FOUND"


async def test_place_search_is_rate_limited(client: Any, caller: TestUser) -> None:
    limiter = client.app[RATE_LIMITER]
    for _ in range(300):
        await limiter.hit(f"birth:places:{caller.id}", 300, 60)
    limited = await client.get("/places", params={"q": "pune"}, headers=auth(caller.token))
    assert limited.status == 429
    assert "Retry-After" in limited.headers


async def test_socket_request_carries_the_birth_profile_to_the_astrologer(
    aiohttp_client: Any, settings: Settings, database: Database
) -> None:
    world = await world_factory(aiohttp_client, settings, database)()
    caller = await world.user(paise=100_000)
    astrologer = await world.user("consultant")
    other = await world.user(paise=100_000)
    profile = await _create(world.server, caller)
    astro_ws, caller_ws = await world.ws(astrologer), await world.ws(caller)
    other_ws = await world.ws(other)
    refused = await other_ws.fail(
        "consult_request",
        {"consultant_id": str(astrologer.id), "mode": "chat", "birth_profile_id": profile["id"]},
    )
    assert refused == "BIRTH_PROFILE_NOT_FOUND"
    ack = await caller_ws.ok(
        "consult_request",
        {"consultant_id": str(astrologer.id), "mode": "chat", "birth_profile_id": profile["id"]},
    )
    cid = ack["consultation"]["id"]
    event = await astro_ws.event("consult_request")
    assert event["consultation"]["id"] == cid
    card = await world.server.get(
        f"/consultations/{cid}/birth-profile", headers=auth(astrologer.token)
    )
    assert card.status == 200
    assert (await card.json())["profile"]["name"] == MUMBAI_1990["name"]


async def test_history_keeps_access_and_delete_takes_it_away(
    client: Any, caller: TestUser, database: Database, settings: Settings
) -> None:
    profile = await _create(client, caller)
    astrologer = await create_user(database, settings, "consultant")
    await grant(database, caller.id, 100_000)
    started = await client.post(
        "/consultations",
        json={
            "consultant_id": str(astrologer.id),
            "mode": "chat",
            "birth_profile_id": profile["id"],
        },
        headers=auth(caller.token),
    )
    cid = (await started.json())["id"]
    accepted = await client.post(f"/consultations/{cid}/accept", headers=auth(astrologer.token))
    assert accepted.status == 200
    ended = await client.post(f"/consultations/{cid}/end", headers=auth(caller.token))
    assert ended.status == 200
    chart_url = f"/birth-profiles/{profile['id']}/chart"
    assert (await client.get(chart_url, headers=auth(astrologer.token))).status == 200

    gone = await client.delete(f"/birth-profiles/{profile['id']}", headers=auth(caller.token))
    assert gone.status == 204
    assert await database.pool.fetchval("SELECT count(*) FROM consultation_birth_profiles") == 0
    card = await client.get(f"/consultations/{cid}/birth-profile", headers=auth(astrologer.token))
    assert card.status == 404
    assert (await client.get(chart_url, headers=auth(astrologer.token))).status == 404


async def test_only_the_owner_changes_or_deletes(
    client: Any, caller: TestUser, database: Database, settings: Settings
) -> None:
    profile = await _create(client, caller)
    other = await create_user(database, settings, "user")
    url = f"/birth-profiles/{profile['id']}"
    body = {**MUMBAI_1990, "latitude": 19.0, "longitude": 72.8}
    assert (await client.put(url, json=body, headers=auth(other.token))).status == 403
    assert (await client.delete(url, headers=auth(other.token))).status == 403
    assert (await client.get(url, headers=auth(caller.token))).status == 200


async def test_birth_details_never_reach_the_logs(
    client: Any, caller: TestUser, capsys: pytest.CaptureFixture[str]
) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("json", "DEBUG")  # every line the service writes, to the captured stderr
    try:
        profile = await _create(client, caller, name="Quetzal Birthlog", time="07:41")
        await client.get(f"/birth-profiles/{profile['id']}/chart", headers=auth(caller.token))
        bad = {**MUMBAI_1990, "name": "Quetzal Birthlog", "date": "1990-02-31", "place_id": 1}
        await client.post("/birth-profiles", json=bad, headers=auth(caller.token))
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    written = capsys.readouterr()
    logs = written.err + written.out
    assert "request_handled" in logs  # the capture works
    for clear in ("Quetzal", "Birthlog", "1990-05-17", "07:41", "1990-02-31", "Mumbai"):
        assert clear not in logs, clear
