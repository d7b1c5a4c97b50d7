"""ChatStore on real PostgreSQL: gapless per-room order, idempotent resends, pages."""

from __future__ import annotations

import asyncio
import uuid

from kundlinow.config import Settings
from kundlinow.db import Database
from signalling.chat import ChatStore
from tests.factories import create_user


async def test_resend_is_stored_once(database: Database, settings: Settings) -> None:
    chat = ChatStore(database.pool)
    room = uuid.uuid4()
    user = await create_user(database, settings)
    first, new1 = await chat.append(room, user.id, "c-1", text="hello")
    again, new2 = await chat.append(room, user.id, "c-1", text="hello (resent)")
    assert new1 and not new2
    assert again.id == first.id and again.text == "hello" and again.seq == 1
    second, _ = await chat.append(room, user.id, "c-2", text="next")
    assert second.seq == 2  # the duplicate did not burn a sequence number
    rows = await database.pool.fetchval(
        "SELECT count(*) FROM chat_messages WHERE consultation_id = $1", room
    )
    assert rows == 2


async def test_concurrent_senders_get_gapless_sequence(
    database: Database, settings: Settings
) -> None:
    chat = ChatStore(database.pool)
    room = uuid.uuid4()
    a = await create_user(database, settings)
    b = await create_user(database, settings)
    results = await asyncio.gather(
        *(chat.append(room, (a if i % 2 else b).id, f"m{i}", text=str(i)) for i in range(40)),
        # the same client ids again, concurrently: each stored once
        *(chat.append(room, (a if i % 2 else b).id, f"m{i}", text=str(i)) for i in range(40)),
    )
    assert sum(1 for _, new in results if new) == 40
    stored = await chat.since(room, 0, 1000)
    seqs = [m.seq for m in stored]
    assert len(stored) == 40 and seqs == sorted(set(seqs))  # unique, increasing
    # every pair of racing copies agrees on one stored message
    by_client = {m.client_id: m.id for m in stored}
    assert all(by_client[msg.client_id] == msg.id for msg, _ in results)
    assert [m.seq for m in await chat.since(room, seqs[34], 1000)] == seqs[35:]
    page = await chat.before(room, None, 10)
    assert [m.seq for m in page] == seqs[30:]
    page = await chat.before(room, seqs[30], 10)
    assert [m.seq for m in page] == seqs[20:30]


async def test_sequential_sends_are_gapless(database: Database, settings: Settings) -> None:
    chat = ChatStore(database.pool)
    room = uuid.uuid4()
    user = await create_user(database, settings)
    for i in range(5):
        await chat.append(room, user.id, f"s{i}", text="x")
        await chat.append(room, user.id, f"s{i}", text="x")  # resend: no number burnt
    assert [m.seq for m in await chat.since(room, 0, 100)] == [1, 2, 3, 4, 5]


async def test_read_marker_only_moves_forward(database: Database, settings: Settings) -> None:
    chat = ChatStore(database.pool)
    room = uuid.uuid4()
    user = await create_user(database, settings)
    for i in range(6):
        await chat.append(room, user.id, f"r{i}", text="x")
    assert await chat.mark_read(room, user.id, 5) == 5
    assert await chat.mark_read(room, user.id, 3) == 5
    assert await chat.reads(room) == {user.id: 5}
    assert await chat.mark_read(room, user.id, 99) == 6  # not past the last message
