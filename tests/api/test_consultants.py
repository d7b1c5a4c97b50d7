"""Listing, filtering, sorting and paging astrologers; reading one; editing one's own profile."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp.test_utils import TestClient

from api.keys import PRESENCE
from core.db import Database
from core.presence import PresenceStatus
from kundlinow.config import Settings
from tests.conftest import AppFactory
from tests.factories import TestUser, create_user

Client = TestClient[Any, Any]


class StaticPresence:
    """A PresenceLookup with fixed answers (the hub's real one lives in signalling)."""

    def __init__(self, statuses: Mapping[uuid.UUID, PresenceStatus]) -> None:
        self.statuses = dict(statuses)
        self.asked: list[list[uuid.UUID]] = []

    async def get_many(self, ids: Iterable[uuid.UUID]) -> Mapping[uuid.UUID, PresenceStatus]:
        wanted = list(ids)
        self.asked.append(wanted)
        # Answers by string id, as a hub keyed by str would: the API accepts both.
        return {str(i): self.statuses[i] for i in wanted if i in self.statuses}  # type: ignore[misc]


async def _consultant(
    database: Database,
    settings: Settings,
    *,
    rates: tuple[int, int, int] = (1000, 1500, 2000),
    languages: tuple[str, ...] = ("en", "hi"),
    specialities: tuple[str, ...] = ("vedic",),
    stars: tuple[int, int] = (0, 0),
) -> TestUser:
    user = await create_user(
        database,
        settings,
        "consultant",
        rates=rates,
        languages=languages,
        specialities=specialities,
    )
    await database.pool.execute(
        "UPDATE consultant_profiles SET rating_sum = $2, rating_count = $3 WHERE user_id = $1",
        user.id,
        *stars,
    )
    return user


async def _ids(client: Client, query: str) -> list[str]:
    response = await client.get(f"/consultants?{query}")
    assert response.status == 200, await response.text()
    return [item["id"] for item in (await response.json())["items"]]


async def test_filters_by_language_speciality_and_mode(
    client: Client, database: Database, settings: Settings
) -> None:
    hindi = await _consultant(database, settings, languages=("hi",), specialities=("tarot",))
    tamil = await _consultant(database, settings, languages=("ta", "en"), rates=(1000, 0, 0))
    await create_user(database, settings, "user")  # callers are never listed
    assert set(await _ids(client, "")) == {str(hindi.id), str(tamil.id)}
    assert await _ids(client, "language=HI") == [str(hindi.id)]
    assert await _ids(client, "speciality=tarot") == [str(hindi.id)]
    assert await _ids(client, "mode=video") == [str(hindi.id)]
    assert await _ids(client, "language=ta&mode=chat") == [str(tamil.id)]
    assert await _ids(client, "language=fr") == []
    listed = (await (await client.get("/consultants?language=ta")).json())["items"][0]
    assert listed["modes"] == ["chat"]
    assert listed["rates"] == {"chat": 1000, "voice": 0, "video": 0}
    assert listed["status"] == "offline"


async def test_sorts_by_rating_then_by_price(
    client: Client, database: Database, settings: Settings
) -> None:
    unrated = await _consultant(database, settings, rates=(500, 500, 3000))
    good = await _consultant(database, settings, rates=(3000, 3000, 1000), stars=(9, 2))
    best = await _consultant(database, settings, rates=(2000, 2000, 2000), stars=(5, 1))
    assert await _ids(client, "sort=rating") == [str(best.id), str(good.id), str(unrated.id)]
    assert await _ids(client, "sort=price") == [str(unrated.id), str(best.id), str(good.id)]
    assert await _ids(client, "sort=price&mode=video") == [
        str(good.id),
        str(best.id),
        str(unrated.id),
    ]
    top = (await (await client.get("/consultants")).json())["items"][0]
    assert top["rating"] == 5.0 and top["rating_count"] == 1


async def test_cursor_pages_are_stable_while_rows_are_added(
    client: Client, database: Database, settings: Settings
) -> None:
    for n in range(7):
        await _consultant(database, settings, rates=(1000 + 100 * (n % 3), 1, 1))
    seen: list[str] = []
    response = await client.get("/consultants?sort=price&limit=3")
    page = await response.json()
    seen += [item["id"] for item in page["items"]]
    # A new, cheaper astrologer appears mid-way: it sorts before the cursor, so later pages
    # neither repeat nor skip anybody.
    await _consultant(database, settings, rates=(1, 1, 1))
    while page["next_cursor"]:
        response = await client.get(f"/consultants?sort=price&limit=3&cursor={page['next_cursor']}")
        assert response.status == 200
        page = await response.json()
        seen += [item["id"] for item in page["items"]]
    assert len(seen) == len(set(seen)) == 7
    prices = [
        row["rate_chat_paise"]
        for row in await database.pool.fetch(
            "SELECT rate_chat_paise FROM consultant_profiles WHERE user_id = ANY($1::uuid[])",
            [uuid.UUID(i) for i in seen],
        )
    ]
    assert sorted(prices) == [1000, 1000, 1000, 1100, 1100, 1200, 1200]


async def test_bad_cursor_and_bad_query_are_4xx(client: Client) -> None:
    response = await client.get("/consultants?cursor=garbage!!")
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "INVALID_CURSOR"
    for query in (
        "limit=0",
        "limit=1000",
        "sort=age",
        "mode=telepathy",
        "bogus=1",
        "online=perhaps",
    ):
        bad = await client.get(f"/consultants?{query}")
        assert bad.status == 422, query
        assert (await bad.json())["error"]["code"] == "VALIDATION_FAILED"


async def test_cursor_of_another_sort_is_refused(
    client: Client, database: Database, settings: Settings
) -> None:
    for _ in range(2):
        await _consultant(database, settings)
    page = await (await client.get("/consultants?sort=price&limit=1")).json()
    response = await client.get(f"/consultants?sort=rating&cursor={page['next_cursor']}")
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "INVALID_CURSOR"


async def test_status_comes_from_the_presence_lookup(
    aiohttp_client: Any, make_app: AppFactory, database: Database, settings: Settings
) -> None:
    online = await _consultant(database, settings, stars=(5, 1))
    busy = await _consultant(database, settings, stars=(4, 1))
    away = await _consultant(database, settings, stars=(3, 1))
    offline = await _consultant(database, settings, stars=(2, 1))
    await database.pool.execute(
        "UPDATE consultant_profiles SET away = true WHERE user_id = $1", away.id
    )
    app = make_app()
    presence = StaticPresence({online.id: "online", busy.id: "busy", away.id: "online"})
    app[PRESENCE] = presence
    client = await aiohttp_client(app)
    items = (await (await client.get("/consultants")).json())["items"]
    assert [(i["id"], i["status"]) for i in items] == [
        (str(online.id), "online"),
        (str(busy.id), "busy"),
        (str(away.id), "away"),
        (str(offline.id), "offline"),
    ]
    assert await _ids(client, "online=true") == [str(online.id)]
    assert await _ids(client, "online=false") == [str(busy.id), str(away.id), str(offline.id)]
    one = await (await client.get(f"/consultants/{busy.id}")).json()
    assert one["status"] == "busy"


async def test_online_filter_pages_through_many_offline_rows(
    aiohttp_client: Any, make_app: AppFactory, database: Database, settings: Settings
) -> None:
    users = [await _consultant(database, settings, rates=(100 + n, 1, 1)) for n in range(12)]
    online = {users[n].id for n in (1, 6, 7, 11)}
    app = make_app()
    app[PRESENCE] = StaticPresence(dict.fromkeys(online, "online"))
    client = await aiohttp_client(app)
    seen: list[str] = []
    cursor = ""
    for _ in range(10):
        page = await (
            await client.get(f"/consultants?online=true&sort=price&limit=3{cursor}")
        ).json()
        seen += [item["id"] for item in page["items"]]
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert seen == [str(users[n].id) for n in (1, 6, 7, 11)]


async def test_get_one_and_404s(client: Client, database: Database, settings: Settings) -> None:
    astrologer = await _consultant(database, settings)
    caller = await create_user(database, settings, "user")
    one = await client.get(f"/consultants/{astrologer.id}")
    assert one.status == 200
    assert (await one.json())["id"] == str(astrologer.id)
    for missing in (caller.id, uuid.uuid4(), "not-a-uuid"):
        response = await client.get(f"/consultants/{missing}")
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "NOT_FOUND"


async def test_patch_my_profile(client: Client, database: Database, settings: Settings) -> None:
    me = await _consultant(database, settings)
    auth = {"Authorization": f"Bearer {me.token}"}
    response = await client.patch(
        "/consultants/me",
        json={
            "bio": "20 years of Vedic practice",
            "languages": ["Hi", "en", "hi"],
            "specialities": ["KP", "Vedic"],
            "rates": {"video": 4500, "voice": 0},
            "away": True,
        },
        headers=auth,
    )
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["bio"] == "20 years of Vedic practice"
    assert body["languages"] == ["hi", "en"]
    assert body["specialities"] == ["kp", "vedic"]
    assert body["rates"] == {"chat": 1000, "voice": 0, "video": 4500}
    assert body["modes"] == ["chat", "video"]
    assert body["away"] is True
    # Only what was sent changes.
    again = await client.patch("/consultants/me", json={"display_name": "Acharya"}, headers=auth)
    assert (await again.json())["bio"] == "20 years of Vedic practice"
    assert (await again.json())["display_name"] == "Acharya"
    listed = await (await client.get(f"/consultants/{me.id}")).json()
    assert listed["display_name"] == "Acharya"


async def test_patch_rejects_bad_values(
    client: Client, database: Database, settings: Settings
) -> None:
    me = await _consultant(database, settings)
    auth = {"Authorization": f"Bearer {me.token}"}
    for body in (
        {"rates": {"chat": -1}},
        {"rates": {"chat": 1.5}},
        {"rates": {"chat": None}},
        {"rates": {"astral": 10}},
        {"bio": None},
        {"bio": "x" * 2001},
        {"languages": [""]},
        {"role": "admin"},
    ):
        response = await client.patch("/consultants/me", json=body, headers=auth)
        assert response.status == 422, body
        assert (await response.json())["error"]["code"] == "VALIDATION_FAILED"
    row = await database.pool.fetchrow(
        "SELECT bio, rate_chat_paise FROM consultant_profiles WHERE user_id = $1", me.id
    )
    assert row is not None and (row["bio"], row["rate_chat_paise"]) == ("", 1000)
    assert (await client.patch("/consultants/me", json={"bio": "x"})).status == 401


async def test_profile_contact_details_are_masked(
    client: Client, database: Database, settings: Settings
) -> None:
    me = await _consultant(database, settings)
    auth = {"Authorization": f"Bearer {me.token}"}
    response = await client.patch(
        "/consultants/me",
        json={
            "display_name": "Guru 98765 43210",
            "bio": "20 years of Vedic practice. Insta: guru_vedic, or nau aath saat chhe paanch "
            "char teen do ek shunya. Born 12-05-1970.",
        },
        headers=auth,
    )
    assert response.status == 200, await response.text()
    listed = await (await client.get(f"/consultants/{me.id}")).json()
    assert listed["display_name"] == "Guru [hidden]"
    assert listed["bio"] == "20 years of Vedic practice. [hidden], or [hidden]. Born 12-05-1970."
