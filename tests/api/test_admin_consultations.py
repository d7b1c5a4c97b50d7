"""Admin consultation review: search with cursor pages, one consultation, log, transcript."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient

from api.auth import Role
from api.keys import CONSULTATIONS, HUB, SESSION_LOG
from billing.consultations import EndReason, Mode
from core.db import Database
from core.session_log import record_event
from kundlinow.config import Settings
from tests.billing.helpers import grant, served
from tests.factories import TestUser, auth, create_user

RATE = 1000


async def _ended_consult(
    client: TestClient[Any, Any], database: Database, caller: TestUser, astrologer: TestUser,
    mode: Mode = Mode.CHAT, *, serve: bool = True,
    during: Callable[[uuid.UUID], Awaitable[None]] | None = None,
) -> uuid.UUID:
    """Requested, accepted and completed; ``serve``: the astrologer answered (or media flowed)
    in the first minute, so minute 1 stays charged (else it is refunded automatically);
    ``during``: what happens while it is active (chat is stored only then)."""
    service = client.app[CONSULTATIONS]
    c = await service.request(caller.id, astrologer.id, mode)
    await service.accept(c.id, astrologer.id)
    if serve:
        await served(database, c.id)
    if during is not None:
        await during(c.id)
    await service.end(c.id, EndReason.COMPLETED, actor_id=caller.id)
    return c.id


async def _named(database: Database, settings: Settings, role: Role, name: str) -> TestUser:
    user = await create_user(database, settings, role)
    await database.pool.execute("UPDATE users SET display_name = $2 WHERE id = $1", user.id, name)
    await database.pool.execute(
        "UPDATE consultant_profiles SET display_name = $2 WHERE user_id = $1", user.id, name
    )
    return user


async def _audited(database: Database, action: str) -> list[dict[str, Any]]:
    rows = await database.pool.fetch(
        "SELECT actor_id, subject_id, details FROM audit_log WHERE action = $1 ORDER BY id",
        action,
    )
    return [{**dict(r), "details": json.loads(r["details"])} for r in rows]


async def test_only_admins_read_and_unknown_ids_are_404(
    client: TestClient[Any, Any], database: Database, settings: Settings
) -> None:
    caller = await create_user(database, settings, "user")
    astrologer = await create_user(database, settings, "consultant")
    admin = await create_user(database, settings, "admin")
    await grant(database, caller.id, 10 * RATE)
    cid = await _ended_consult(client, database, caller, astrologer)
    paths = ["", f"/{cid}", f"/{cid}/log", f"/{cid}/log?format=csv", f"/{cid}/transcript"]
    for path in paths:
        url = f"/admin/consultations{path}"
        assert (await client.get(url)).status == 401, url
        for user in (caller, astrologer):
            forbidden = await client.get(url, headers=auth(user.token))
            assert forbidden.status == 403, url
            assert (await forbidden.json())["error"]["code"] == "FORBIDDEN"
    for path in ["", "/log", "/transcript"]:
        for bad in (uuid.uuid4(), "not-a-uuid"):
            missing = await client.get(f"/admin/consultations/{bad}{path}",
                                       headers=auth(admin.token))
            assert missing.status == 404, (bad, path)
    bad_cursor = await client.get("/admin/consultations?cursor=xyz", headers=auth(admin.token))
    assert bad_cursor.status == 400
    assert (await bad_cursor.json())["error"]["code"] == "INVALID_CURSOR"
    for query in ("status=lost", "from=2026-01-01T00:00:00", "limit=0", "colour=red",
                  "astrologer=a%0Ab",
                  "from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z"):
        bad_filter = await client.get(f"/admin/consultations?{query}", headers=auth(admin.token))
        assert bad_filter.status == 422, query
        assert (await bad_filter.json())["error"]["code"] == "VALIDATION_FAILED"
    # NUL is refused for every route before validation (api/hygiene.py, issue 11 point 13).
    nul = await client.get("/admin/consultations?caller=%00", headers=auth(admin.token))
    assert nul.status == 400 and (await nul.json())["error"]["code"] == "INVALID_CHARACTER"


async def test_search_filters_and_pages_newest_first(
    client: TestClient[Any, Any], database: Database, settings: Settings
) -> None:
    admin = await create_user(database, settings, "admin")
    asha = await _named(database, settings, "user", "Asha Rao")
    ravi = await _named(database, settings, "user", "Ravi Kumar")
    guru = await _named(database, settings, "consultant", "Guru Dev")
    other = await _named(database, settings, "consultant", "Tara")
    for user in (asha, ravi):
        await grant(database, user.id, 100 * RATE)
    ids = [
        await _ended_consult(client, database, asha, guru),
        await _ended_consult(client, database, asha, other, Mode.VOICE),
        await _ended_consult(client, database, ravi, guru, Mode.VIDEO),
    ]
    live = await client.app[CONSULTATIONS].request(ravi.id, other.id, Mode.CHAT)
    headers = auth(admin.token)

    async def search(query: str) -> dict[str, Any]:
        response = await client.get(f"/admin/consultations?{query}", headers=headers)
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body

    def ids_of(page: dict[str, Any]) -> list[str]:
        return [item["id"] for item in page["items"]]

    everything = await search("limit=100")
    assert ids_of(everything) == [str(live.id), *[str(i) for i in reversed(ids)]]
    assert everything["next_cursor"] is None
    assert ids_of(await search("caller=ASHA")) == [str(ids[1]), str(ids[0])]
    assert ids_of(await search(f"caller={asha.email[:12]}")) == [str(ids[1]), str(ids[0])]
    assert ids_of(await search("astrologer=guru")) == [str(ids[2]), str(ids[0])]
    assert ids_of(await search("mode=voice")) == [str(ids[1])]
    assert ids_of(await search("status=requested")) == [str(live.id)]
    assert ids_of(await search("status=ended&astrologer=tara&caller=asha")) == [str(ids[1])]
    assert ids_of(await search("caller=%25")) == []  # a LIKE wildcard is taken literally

    first = await search("limit=2")
    second = await search(f"limit=2&cursor={first['next_cursor']}")
    assert ids_of(first) + ids_of(second) == ids_of(everything)
    assert second["next_cursor"] is None

    requested = [item["requested_at"] for item in everything["items"]]
    window = await search(f"from={requested[2].replace('+', '%2B')}"
                          f"&to={requested[0].replace('+', '%2B')}")
    assert ids_of(window) == ids_of(everything)[1:3]

    item = next(i for i in everything["items"] if i["id"] == str(ids[0]))
    assert item["caller"] == {"id": str(asha.id), "name": "Asha Rao", "email": asha.email}
    assert item["astrologer"]["name"] == "Guru Dev" and item["astrologer"]["id"] == str(guru.id)
    assert (item["status"], item["mode"], item["end_reason"]) == ("ended", "chat", "completed")
    assert (item["rate_paise"], item["minutes_charged"], item["charged_paise"]) == (RATE, 1, RATE)
    assert item["refunded_paise"] == 0 and item["started_at"] and item["ended_at"]
    one = await client.get(f"/admin/consultations/{ids[0]}", headers=headers)
    assert await one.json() == item
    searched = await _audited(database, "consultations_searched")
    assert searched[1]["details"] == {"caller": "ASHA", "limit": 20}
    assert [a["subject_id"] for a in await _audited(database, "consultation_viewed")] == [
        str(ids[0])
    ]


async def test_log_as_json_and_csv(
    client: TestClient[Any, Any], database: Database, settings: Settings
) -> None:
    caller = await create_user(database, settings, "user")
    astrologer = await create_user(database, settings, "consultant")
    admin = await create_user(database, settings, "admin")
    await grant(database, caller.id, 10 * RATE)
    cid = await _ended_consult(client, database, caller, astrologer)
    # a hub-side event with awkward text: only queued, the read flushes this node's queue
    await record_event(client.app[SESSION_LOG], cid, "socket_disconnected", actor_id=caller.id,
                       node_id="node-a", data={"note": 'comma, "quote"\nnewline'})

    response = await client.get(f"/admin/consultations/{cid}/log", headers=auth(admin.token))
    items = (await response.json())["items"]
    assert [e["kind"] for e in items] == [
        "requested", "accepted", "minute_charged", "ended", "socket_disconnected"
    ]
    assert items[-1]["node_id"] == "node-a" and items[-1]["actor_id"] == str(caller.id)
    assert items[2]["data"] == {"minute": 1, "amount_paise": RATE, "source": "wallet"}

    as_csv = await client.get(f"/admin/consultations/{cid}/log?format=csv",
                              headers=auth(admin.token))
    assert as_csv.content_type == "text/csv"
    assert "attachment" in as_csv.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(await as_csv.text())))
    assert [r["kind"] for r in rows] == [e["kind"] for e in items]
    assert [r["at"] for r in rows] == [e["at"] for e in items]
    assert json.loads(rows[-1]["data"]) == {"note": 'comma, "quote"\nnewline'}
    assert rows[0]["node_id"] == "" and rows[0]["actor_id"] == str(caller.id)
    viewed = await _audited(database, "consultation_log_viewed")
    assert [(a["actor_id"], a["details"]["format"]) for a in viewed] == [
        (admin.id, "json"), (admin.id, "csv")
    ]


async def test_transcript_as_json_and_text(
    client: TestClient[Any, Any], database: Database, settings: Settings
) -> None:
    caller = await create_user(database, settings, "user")
    astrologer = await create_user(database, settings, "consultant")
    admin = await create_user(database, settings, "admin")
    await grant(database, caller.id, 10 * RATE)
    chat = client.app[HUB].chat

    async def talk(cid: uuid.UUID) -> None:
        await chat.append(cid, caller.id, "c1", text="When will I marry?")
        await chat.append(cid, astrologer.id, "a1", text="Call me at [hidden]", masked=True)

    # unserved (refunded): the two messages are the whole transcript
    cid = await _ended_consult(client, database, caller, astrologer, serve=False, during=talk)

    response = await client.get(f"/admin/consultations/{cid}/transcript",
                                headers=auth(admin.token))
    items = (await response.json())["items"]
    assert [(m["seq"], m["sender_role"], m["body"], m["masked"]) for m in items] == [
        (1, "caller", "When will I marry?", False),
        (2, "astrologer", "Call me at [hidden]", True),
    ]
    assert items[0]["sender_id"] == str(caller.id) and items[0]["kind"] == "text"
    text = await client.get(f"/admin/consultations/{cid}/transcript?format=text",
                            headers=auth(admin.token))
    assert text.content_type == "text/plain"
    lines = (await text.text()).splitlines()
    assert lines == [f"{items[0]['at']} caller: When will I marry?",
                     f"{items[1]['at']} astrologer: Call me at [hidden]"]
    assert len(await _audited(database, "consultation_transcript_viewed")) == 2
