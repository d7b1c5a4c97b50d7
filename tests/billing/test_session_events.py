"""Billing writes the session log with its money: requested ... minute_charged ... refunded."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from billing.consultations import ConsultationService, EndReason, Mode
from billing.refunds import refund_consultation
from billing.timeline import consultation_timeline
from core.db import Database
from kundlinow.config import Settings
from tests.billing.helpers import ManualClock, grant, served
from tests.factories import create_user

RATE = 1000  # chat rate of tests.factories consultants


async def _log(database: Database, cid: uuid.UUID) -> list[tuple[str, dict[str, Any]]]:
    return [(e.kind, dict(e.data)) for e in await consultation_timeline(database.pool, cid)]


async def test_a_paid_consultation_logs_each_step_with_its_money(
    service: ConsultationService, database: Database, settings: Settings, clock: ManualClock
) -> None:
    caller = await create_user(database, settings, "user")
    consultant = await create_user(database, settings, "consultant")
    admin = await create_user(database, settings, "admin")
    await grant(database, caller.id, 6 * RATE)
    c = await service.request(caller.id, consultant.id, Mode.CHAT)
    clock.advance(5)
    await service.accept(c.id, consultant.id)
    await served(database, c.id)  # answered in its first minute: charged, not refunded
    for _ in range(3):  # minutes 2..4: 2 minutes are left after minute 4
        clock.advance(60)
        await service.tick()
    clock.advance(30)
    await service.end(c.id, EndReason.COMPLETED, actor_id=caller.id)
    await refund_consultation(database, c.id, RATE, "dropped audio", admin.id, "k-1")

    log = await _log(database, c.id)
    assert [kind for kind, _ in log] == [
        "requested", "accepted",
        "minute_charged", "minute_charged", "minute_charged",
        "minute_charged", "balance_warning",
        "ended", "refunded",
    ]
    assert log[0][1]["rate_paise"] == RATE and log[0][1]["hold_paise"] == 5 * RATE
    assert [d["minute"] for k, d in log if k == "minute_charged"] == [1, 2, 3, 4]
    assert log[6][1] == {"minutes_left": 2, "balance_paise": 2 * RATE}
    assert log[7][1]["reason"] == "completed"
    assert log[8][1]["amount_paise"] == RATE and log[8][1]["reason"] == "dropped audio"
    events = await consultation_timeline(database.pool, c.id)
    assert events[7].actor_id == caller.id and events[8].actor_id == admin.id
    assert events[2].at == events[1].at  # minute 1 is charged on acceptance


async def test_running_out_of_money_ends_in_the_charge_statement(
    service: ConsultationService, database: Database, settings: Settings, clock: ManualClock
) -> None:
    caller = await create_user(database, settings, "user")
    consultant = await create_user(database, settings, "consultant")
    await grant(database, caller.id, 5 * RATE)
    c = await service.request(caller.id, consultant.id, Mode.CHAT)
    await service.accept(c.id, consultant.id)
    await served(database, c.id)
    clock.advance(6 * 60)
    await service.tick()
    kinds = [kind for kind, _ in await _log(database, c.id)]
    assert kinds[-1] == "ended" and kinds.count("minute_charged") == 5
    assert (await _log(database, c.id))[-1][1]["reason"] == "insufficient_balance"


async def test_rejection_and_timeout_are_logged(
    service: ConsultationService, database: Database, settings: Settings, clock: ManualClock
) -> None:
    caller = await create_user(database, settings, "user")
    consultant = await create_user(database, settings, "consultant")
    await grant(database, caller.id, 10 * RATE)
    rejected = await service.request(caller.id, consultant.id, Mode.CHAT)
    await service.reject(rejected.id, consultant.id)
    timed_out = await service.request(caller.id, consultant.id, Mode.CHAT)
    clock.advance(service.settings.request_timeout_seconds + 1)
    await service.tick()
    by_timer = await service.request(caller.id, consultant.id, Mode.CHAT)
    await service.end(by_timer.id, EndReason.TIMEOUT)  # the hub's request timer

    assert [k for k, _ in await _log(database, rejected.id)] == ["requested", "rejected", "ended"]
    assert (await _log(database, rejected.id))[-1][1]["reason"] == "rejected"
    log = await _log(database, timed_out.id)
    assert [k for k, _ in log] == ["requested", "timed_out", "ended"]
    assert log[-1][1]["reason"] == "timeout"
    by_timer_log = await _log(database, by_timer.id)
    assert [k for k, _ in by_timer_log] == ["requested", "timed_out", "ended"]
    assert by_timer_log[-1][1]["reason"] == "timeout"


async def test_a_minute_begun_after_a_back_dated_end_is_logged_as_reversed(
    service: ConsultationService, database: Database, settings: Settings, clock: ManualClock
) -> None:
    caller = await create_user(database, settings, "user")
    consultant = await create_user(database, settings, "consultant")
    await grant(database, caller.id, 10 * RATE)
    c = await service.request(caller.id, consultant.id, Mode.CHAT)
    started = (await service.accept(c.id, consultant.id)).started_at
    assert started is not None
    await served(database, c.id)
    clock.advance(61)
    await service.tick()  # charges minute 2
    clock.advance(5)
    dropped_at = started + timedelta(seconds=30)  # the caller's socket went during minute 1
    await service.end(c.id, EndReason.DISCONNECTED, actor_id=caller.id, ended_at=dropped_at)
    log = await _log(database, c.id)
    assert [k for k, _ in log] == [
        "requested", "accepted", "minute_charged", "minute_charged", "minute_reversed", "ended"
    ]
    assert log[4][1]["minute"] == 2 and log[4][1]["amount_paise"] == RATE
    assert log[5][1] == {"reason": "disconnected", "ended_at": dropped_at.isoformat()}


async def test_an_unserved_consultation_logs_each_minute_it_refunds(
    service: ConsultationService, database: Database, settings: Settings, clock: ManualClock
) -> None:
    caller = await create_user(database, settings, "user")
    consultant = await create_user(database, settings, "consultant")
    await grant(database, caller.id, 10 * RATE)
    c = await service.request(caller.id, consultant.id, Mode.CHAT)
    await service.accept(c.id, consultant.id)  # and never answers
    clock.advance(61)
    await service.tick()  # charges minute 2
    clock.advance(5)
    statement = await service.end(c.id, EndReason.COMPLETED, actor_id=caller.id)
    assert statement.minutes == 0 and statement.consultation.auto_refunded_paise == 2 * RATE
    log = await _log(database, c.id)
    assert [k for k, _ in log] == [
        "requested", "accepted", "minute_charged", "minute_charged",
        "minute_reversed", "minute_reversed", "ended",
    ]
    assert [(d["minute"], d["amount_paise"], d["reason"]) for k, d in log
            if k == "minute_reversed"] == [(1, RATE, "unanswered"), (2, RATE, "unanswered")]
    assert log[-1][1]["reason"] == "completed"
