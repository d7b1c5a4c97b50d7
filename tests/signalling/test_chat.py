"""ChatStore on real PostgreSQL: gapless per-room order, idempotent resends, pages, and no new
message once the consultation has ended."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
from prometheus_client import CollectorRegistry, generate_latest

from billing.config import BillingSettings
from billing.consultations import ConsultationService
from core.bus import LocalBus
from core.clock import SystemClock
from core.db import Database
from kundlinow.config import Settings
from signalling.chat import ChatStore, ConsultationClosed
from signalling.metrics import ChatMetrics
from tests.factories import active_consultation, create_user
from tests.scrape import Scrape


async def test_resend_is_stored_once(database: Database, settings: Settings) -> None:
    chat = ChatStore(database.pool)
    room = await active_consultation(database, settings)
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
    room = await active_consultation(database, settings)
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
    room = await active_consultation(database, settings)
    user = await create_user(database, settings)
    for i in range(5):
        await chat.append(room, user.id, f"s{i}", text="x")
        await chat.append(room, user.id, f"s{i}", text="x")  # resend: no number burnt
    assert [m.seq for m in await chat.since(room, 0, 100)] == [1, 2, 3, 4, 5]


async def test_read_marker_only_moves_forward(database: Database, settings: Settings) -> None:
    chat = ChatStore(database.pool)
    room = await active_consultation(database, settings)
    user = await create_user(database, settings)
    for i in range(6):
        await chat.append(room, user.id, f"r{i}", text="x")
    assert await chat.mark_read(room, user.id, 5) == 5
    assert await chat.mark_read(room, user.id, 3) == 5
    assert await chat.reads(room) == {user.id: 5}
    assert await chat.mark_read(room, user.id, 99) == 6  # not past the last message


async def test_appends_of_one_tick_are_one_transaction_numbered_in_arrival_order(
    database: Database, settings: Settings
) -> None:
    registry = CollectorRegistry()
    chat = await ChatStore.open(database.pool, database.dsn, writers=1,
                                metrics=ChatMetrics(registry, "node-a"))
    try:
        rooms = [await active_consultation(database, settings) for _ in range(3)]
        user = await create_user(database, settings)
        sends = [(rooms[i % 3], f"t{i}") for i in range(30)]
        results = await asyncio.gather(
            *(chat.append(room, user.id, client, text=client) for room, client in sends)
        )
        assert all(new for _, new in results)
        # now() is the transaction's start: one value means one commit for the whole tick
        assert len({m.created_at for m, _ in results}) == 1
        batches = Scrape.parse(generate_latest(registry).decode())
        assert batches.value("kundlinow_chat_batch_messages_count", node="node-a") == 1
        assert batches.value("kundlinow_chat_batch_messages_sum", node="node-a") == 30
        assert batches.value("kundlinow_chat_commit_duration_seconds_count", node="node-a") == 1
        for room in rooms:
            stored = await chat.since(room, 0, 100)
            assert [m.seq for m in stored] == list(range(1, 11))
            assert [m.client_id for m in stored] == [c for r, c in sends if r == room]
        # the next tick is the next batch, and the numbers carry on
        later, _ = await chat.append(rooms[0], user.id, "t-later", text="x")
        assert later.seq == 11 and later.created_at > results[0][0].created_at
    finally:
        await chat.close()


async def test_a_bad_row_fails_only_its_own_sender(database: Database, settings: Settings) -> None:
    chat = ChatStore(database.pool)
    room = await active_consultation(database, settings)
    user = await create_user(database, settings)
    stranger = uuid.uuid4()  # not a user: the row violates chat_messages' foreign key
    results = await asyncio.gather(
        chat.append(room, user.id, "ok-1", text="a"),
        chat.append(room, stranger, "bad", text="b"),
        chat.append(room, user.id, "ok-2", text="c"),
        return_exceptions=True,
    )
    assert isinstance(results[1], asyncpg.ForeignKeyViolationError)
    stored = await chat.since(room, 0, 100)
    assert [(m.client_id, m.text) for m in stored] == [("ok-1", "a"), ("ok-2", "c")]
    assert [m.seq for m in stored] == [1, 2]


async def test_two_nodes_racing_the_same_resend_store_it_once(
    database: Database, settings: Settings
) -> None:
    nodes = [await ChatStore.open(database.pool, database.dsn, writers=2) for _ in range(2)]
    try:
        room = await active_consultation(database, settings)
        user = await create_user(database, settings)
        results = await asyncio.gather(
            *(
                node.append(room, user.id, f"m{i}", text=str(i))
                for i in range(20)
                for node in nodes
            )
        )
        assert sum(1 for _, new in results if new) == 20
        stored = {m.client_id: m for m in await nodes[0].since(room, 0, 100)}
        assert len(stored) == 20
        assert all(stored[m.client_id].id == m.id for m, _ in results)
        seqs = sorted(m.seq for m in stored.values())
        assert seqs == sorted(set(seqs))
    finally:
        for node in nodes:
            await node.close()


async def test_close_finishes_the_batch_in_flight_and_fails_the_waiting(
    database: Database, settings: Settings
) -> None:
    chat = await ChatStore.open(database.pool, database.dsn, writers=1)
    room = await active_consultation(database, settings)
    user = await create_user(database, settings)

    def send(prefix: str) -> list[asyncio.Future[tuple[object, bool]]]:
        return [
            asyncio.ensure_future(chat.append(room, user.id, f"{prefix}{i}", text="x"))
            for i in range(3)
        ]

    in_flight = send("a")
    await asyncio.sleep(0)  # the appends queue up
    await asyncio.sleep(0)  # their batch takes the only writer
    waiting = send("b")
    await asyncio.sleep(0)  # these queue up behind it
    await chat.close()
    assert all(new for _, new in await asyncio.gather(*in_flight))
    failed = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(outcome, ConnectionError) for outcome in failed)
    rows = await database.pool.fetch(
        "SELECT client_id FROM chat_messages WHERE consultation_id = $1 ORDER BY seq", room
    )
    assert [r["client_id"] for r in rows] == ["a0", "a1", "a2"]


async def test_no_new_message_is_stored_once_the_consultation_has_ended(
    database: Database, settings: Settings
) -> None:
    """The database decides, not a node's cached view: an end committed elsewhere (another
    node, the ticker) refuses new messages at once, in a batch with others' messages; a resend
    of a message stored before the end still finds it."""
    chat = ChatStore(database.pool)
    ended = await active_consultation(database, settings)
    live = await active_consultation(database, settings)
    user = await create_user(database, settings)
    before, _ = await chat.append(ended, user.id, "before", text="stored while active")
    service = ConsultationService(database, LocalBus(), SystemClock(), BillingSettings())
    await service.end(ended, "completed")
    results = await asyncio.gather(
        chat.append(ended, user.id, "after", text="too late"),
        chat.append(live, user.id, "other-room", text="fine"),
        chat.append(ended, user.id, "before", text="resent"),
        return_exceptions=True,
    )
    assert isinstance(results[0], ConsultationClosed), results[0]
    assert not isinstance(results[1], BaseException) and results[1][1] is True
    assert not isinstance(results[2], BaseException) and results[2] == (before, False)
    assert [m.client_id for m in await chat.since(ended, 0, 100)] == ["before"]
    assert await chat.last_seq(ended) == 1  # the refused message burnt no number
