"""The session log's writers and its append-only table, on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import pytest

from core.db import Database
from core.session_log import EventLog, read_events, record_event


async def test_a_connection_writes_in_its_transaction(database: Database) -> None:
    cid = uuid.uuid4()
    async with database.pool.acquire() as conn:
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await record_event(conn, cid, "minute_charged", data={"minute": 1})
                raise RuntimeError("the money did not move")
        await record_event(conn, cid, "requested")
    await record_event(database, cid, "accepted", actor_id=cid)  # a Database
    await record_event(database.pool, cid, "ended", node_id="n1", data={"reason": "completed"})
    events = await read_events(database.pool, cid)
    assert [e.kind for e in events] == ["requested", "accepted", "ended"]
    assert events[1].actor_id == cid and events[2].node_id == "n1"
    assert events[2].data == {"reason": "completed"}


async def test_kinds_are_snake_case(database: Database) -> None:
    with pytest.raises(ValueError):
        await record_event(database, uuid.uuid4(), "Ended Now")


async def test_the_table_is_append_only(database: Database) -> None:
    cid = uuid.uuid4()
    await record_event(database, cid, "requested")
    for statement in (
        "UPDATE consultation_events SET kind = 'accepted'",
        "DELETE FROM consultation_events",
        "TRUNCATE consultation_events",
    ):
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            await database.pool.execute(statement)
    assert [e.kind for e in await read_events(database.pool, cid)] == ["requested"]


async def test_the_batched_writer_queues_and_writes_in_order(database: Database) -> None:
    cid = uuid.uuid4()
    log = EventLog(database.pool, flush_s=0.05, batch_max=3)
    log.start()
    try:
        for n in range(7):
            await record_event(log, cid, "ice_state_changed", data={"n": n})
        deadline = time.monotonic() + 30
        while len(await read_events(database.pool, cid)) < 7:  # written without a flush call
            assert time.monotonic() < deadline, "the writer never wrote the queue"
            await asyncio.sleep(0.05)
        assert [e.data["n"] for e in await read_events(database.pool, cid)] == list(range(7))
    finally:
        await log.close()


async def test_a_full_queue_drops_the_oldest_and_close_writes_the_rest(
    database: Database,
) -> None:
    cid = uuid.uuid4()
    log = EventLog(database.pool, max_pending=3)  # never started: only close() writes
    for n in range(5):
        await record_event(log, cid, "first_media", data={"n": n})
    assert log.dropped == 2
    await log.close()
    assert [e.data["n"] for e in await read_events(database.pool, cid)] == [2, 3, 4]


async def test_a_batch_the_database_refuses_is_dropped_not_retried_forever(
    database: Database,
) -> None:
    cid = uuid.uuid4()
    log = EventLog(database.pool)
    await record_event(log, cid, "joined", node_id="n" * 65)  # over the column's CHECK
    assert await log.flush()
    assert log.dropped == 1
    await record_event(log, cid, "left", node_id="n1")
    await log.close()
    assert [e.kind for e in await read_events(database.pool, cid)] == ["left"]
