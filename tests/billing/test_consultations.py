"""ConsultationService against the real database: holds, minute charges, endings, events."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from billing.audit import load_snapshot
from billing.charging import CHARGE_SQL, Due, charge
from billing.config import BillingSettings
from billing.consultations import ConsultationService, EndReason, Mode, State
from billing.errors import (
    AlreadyLive,
    ConsultantUnavailable,
    InsufficientBalance,
    InvalidTransition,
)
from billing.invariants import check_all
from billing.model import AccountKind
from billing.wallets import WalletReader
from core.db import Database
from kundlinow.config import Settings
from tests.billing.helpers import ManualClock, RecordingBus, balance, grant, served
from tests.factories import TestUser as User
from tests.factories import create_user

RATE = 1000  # chat rate of tests.factories consultants: ₹10/min


async def healthy(database: Database) -> None:
    assert check_all(await load_snapshot(database.pool)) == []


async def people(database: Database, settings: Settings, funds: int = 0) -> tuple[User, User]:
    caller = await create_user(database, settings, "user")
    consultant = await create_user(database, settings, "consultant")
    if funds:
        await grant(database, caller.id, funds)
    return caller, consultant


async def test_request_needs_minimum_minutes_and_holds_them(
    service: ConsultationService, database: Database, settings: Settings
) -> None:
    caller, consultant = await people(database, settings, funds=4 * RATE)
    with pytest.raises(InsufficientBalance) as err:
        await service.request(caller.id, consultant.id, Mode.CHAT)
    assert err.value.details["needed_paise"] == 5 * RATE
    assert err.value.details["available_paise"] == 4 * RATE
    await grant(database, caller.id, RATE)
    c = await service.request(caller.id, consultant.id, Mode.CHAT)
    assert c.state is State.REQUESTED and c.rate_paise == RATE
    held = await database.pool.fetchval(
        "SELECT amount_paise FROM ledger_holds WHERE reference = $1", f"consult:{c.id}"
    )
    assert held == 5 * RATE
    with pytest.raises(AlreadyLive):
        await service.request(caller.id, consultant.id, Mode.VOICE)
    await healthy(database)


async def test_accept_charges_minute_one_then_each_minute_with_split(
    service: ConsultationService,
    database: Database,
    settings: Settings,
    clock: ManualClock,
    bus: RecordingBus,
) -> None:
    caller, consultant = await people(database, settings, funds=20 * RATE)
    c = await service.request(caller.id, consultant.id, Mode.CHAT)
    c = await service.accept(c.id, consultant.id)
    await served(database, c.id)
    assert c.state is State.ACTIVE and c.minutes_charged == 1
    assert await balance(database, AccountKind.WALLET, caller.id) == 19 * RATE
    assert await balance(database, AccountKind.EARNINGS, consultant.id) == 700
    assert await balance(database, AccountKind.PLATFORM_REVENUE, None) == 300
    hold = await database.pool.fetchrow("SELECT state, posted_paise FROM ledger_holds")
    assert (hold["state"], hold["posted_paise"]) == ("posted", RATE)
    clock.advance(59)
    assert (await service.tick()).charged_minutes == 0
    clock.advance(1)  # one full minute has run: minute 2 is due
    report = await service.tick()
    assert report.charged_minutes == 1
    assert (await service.tick()).charged_minutes == 0  # idempotent
    assert (await service.get(c.id)).minutes_charged == 2
    ticks = bus.of("billing_tick")
    assert [t["minutes"] for t in ticks] == [1, 2]
    assert ticks[-1]["balance_paise"] == 18 * RATE
    statement = await service.end(c.id, EndReason.COMPLETED, actor_id=caller.id)
    assert (statement.minutes, statement.amount_paise) == (2, 2 * RATE)
    assert statement.consultant_share_paise == 1400 and statement.platform_paise == 600
    again = await service.end(c.id, EndReason.ADMIN)
    assert again == statement
    assert bus.of("consult_state")[-1]["consultation"]["state"] == "ended"
    await healthy(database)


async def test_tick_catches_up_after_downtime_and_ends_at_unfunded_boundary(
    service: ConsultationService,
    database: Database,
    settings: Settings,
    clock: ManualClock,
    bus: RecordingBus,
) -> None:
    caller, consultant = await people(database, settings, funds=7 * RATE + 500)
    c = await service.request(caller.id, consultant.id, Mode.CHAT)
    await service.accept(c.id, consultant.id)
    await served(database, c.id)
    start = clock.now()
    clock.advance(3 * 60 + 10)  # server was down: minutes 2, 3, 4 are due
    report = await service.tick()
    assert report.charged_minutes == 3
    assert not bus.of("balance_warning")  # 3 minutes left: no warning yet
    clock.advance(20 * 60)  # far beyond what the wallet can pay
    report = await service.tick()
    assert report.charged_minutes == 3 and report.ended_insufficient == [c.id]
    ended = await service.get(c.id)
    assert ended.state is State.ENDED and ended.end_reason is EndReason.INSUFFICIENT_BALANCE
    assert ended.minutes_charged == 7
    assert ended.ended_at == start + timedelta(minutes=7)  # boundary of the unpaid 8th minute
    assert await balance(database, AccountKind.WALLET, caller.id) == 500  # no debt
    assert bus.of("consult_state")[-1]["consultation"]["end_reason"] == "insufficient_balance"
    await healthy(database)


async def test_a_tick_moves_all_its_minutes_in_one_transfer_history_stays_per_consultation(
    service: ConsultationService, database: Database, settings: Settings, clock: ManualClock
) -> None:
    pairs = [await people(database, settings, funds=20 * RATE) for _ in range(2)]
    live = []
    for caller, consultant in pairs:
        c = await service.request(caller.id, consultant.id, Mode.CHAT)
        live.append(await service.accept(c.id, consultant.id))
    clock.advance(2 * 60)  # minutes 2 and 3 of both are due
    assert (await service.tick()).charged_minutes == 4
    ticked = await database.pool.fetch(
        "SELECT DISTINCT transfer_id FROM consultation_charges WHERE minute > 1"
    )
    assert len(ticked) == 1
    entries = await database.pool.fetch(
        "SELECT a.kind, a.owner_id, e.amount_paise, e.consultation_id FROM ledger_entries e "
        "JOIN ledger_accounts a ON a.id = e.account_id WHERE e.transfer_id = $1",
        ticked[0]["transfer_id"],
    )
    got = sorted(
        (r["kind"], r["owner_id"], r["amount_paise"], r["consultation_id"]) for r in entries
    )
    want = sorted(
        [("platform_revenue", None, 4 * 300, None)]
        + [
            ("wallet", caller.id, -2 * RATE, c.id)
            for (caller, _), c in zip(pairs, live, strict=True)
        ]
        + [("earnings", k.id, 2 * 700, c.id) for (_, k), c in zip(pairs, live, strict=True)]
    )
    assert got == want
    history = await WalletReader(database).transactions(pairs[0][0].id)
    charges = [i for i in history["items"] if i["kind"] == "charge"]
    assert [i["amount_paise"] for i in charges] == [-2 * RATE, -RATE]  # newest first
    assert {i["consultation_id"] for i in charges} == {str(live[0].id)}
    await healthy(database)


async def test_charge_statement_is_planned_for_each_batch(
    service: ConsultationService, database: Database, settings: Settings, clock: ManualClock
) -> None:
    """A long-running ticker reuses its connections: from the sixth execution the plan cache
    would pick a generic plan (catastrophic for a 10,000-consultation batch)."""
    caller, consultant = await people(database, settings, funds=50 * RATE)
    c = await service.request(caller.id, consultant.id, Mode.CHAT)
    await service.accept(c.id, consultant.id)
    async with database.pool.acquire() as conn:
        for minute in range(2, 10):
            async with conn.transaction():
                await conn.execute("SELECT 1 FROM consultations WHERE id = $1 FOR UPDATE", c.id)
                await conn.execute(
                    "SELECT 1 FROM ledger_accounts WHERE owner_id = ANY($1::uuid[]) "
                    "ORDER BY id FOR UPDATE",
                    [caller.id, consultant.id],
                )
                charged = await charge(conn, [Due(c.id, minute - 1, 0, minute)], clock.now())
                assert charged[0].minutes_charged == minute
        plans = await conn.fetchrow(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1",
            CHARGE_SQL,
        )
    assert plans["generic_plans"] == 0 and plans["custom_plans"] >= 8
    await healthy(database)


async def test_back_dated_end_never_charges_past_it(
    service: ConsultationService, database: Database, settings: Settings, clock: ManualClock
) -> None:
    caller, consultant = await people(database, settings, funds=50 * RATE)
    c = await service.request(caller.id, consultant.id, Mode.CHAT)
    await service.accept(c.id, consultant.id)
    await served(database, c.id)
    start = clock.now()
    clock.advance(5 * 60)
    await service.tick()  # charges minutes 2..6 (minute 6 began at 5:00)
    assert (await service.get(c.id)).minutes_charged == 6
    clock.advance(30)
    dropped = start + timedelta(minutes=4, seconds=30)
    statement = await service.end(c.id, EndReason.DISCONNECTED, ended_at=dropped)
    assert statement.minutes == 5  # minute 6 began after the drop: reversed
    assert statement.consultation.ended_at == dropped
    assert await balance(database, AccountKind.WALLET, caller.id) == 45 * RATE
    await healthy(database)


async def test_end_charges_owed_minutes_not_yet_ticked(
    service: ConsultationService, database: Database, settings: Settings, clock: ManualClock
) -> None:
    caller, consultant = await people(database, settings, funds=50 * RATE)
    c = await service.request(caller.id, consultant.id, Mode.CHAT)
    await service.accept(c.id, consultant.id)
    await served(database, c.id)
    clock.advance(150)  # 2.5 minutes, no tick ran
    statement = await service.end(c.id, EndReason.COMPLETED)
    assert statement.minutes == 3
    await healthy(database)


async def test_reject_cancel_and_timeout_release_the_hold(
    service: ConsultationService,
    database: Database,
    settings: Settings,
    clock: ManualClock,
) -> None:
    caller, consultant = await people(database, settings, funds=10 * RATE)
    c = await service.request(caller.id, consultant.id, Mode.CHAT)
    rejected = await service.reject(c.id, consultant.id)
    assert rejected.end_reason is EndReason.REJECTED
    with pytest.raises(InvalidTransition):
        await service.accept(c.id, consultant.id)
    c = await service.request(caller.id, consultant.id, Mode.CHAT)
    statement = await service.end(c.id, EndReason.COMPLETED, actor_id=caller.id)
    assert statement.consultation.end_reason is EndReason.CANCELLED and statement.minutes == 0
    c = await service.request(caller.id, consultant.id, Mode.CHAT)
    clock.advance(61)
    report = await service.tick()
    assert report.timed_out == [c.id]
    assert (await service.get(c.id)).end_reason is EndReason.TIMEOUT
    open_holds = await database.pool.fetchval(
        "SELECT count(*) FROM ledger_holds WHERE state='open'"
    )
    assert open_holds == 0
    assert await balance(database, AccountKind.WALLET, caller.id) == 10 * RATE
    await healthy(database)


async def test_free_first_minutes_paid_by_promotions_and_consultant_still_paid(
    database: Database, settings: Settings, clock: ManualClock, bus: RecordingBus
) -> None:
    service = ConsultationService(
        database, bus, clock, BillingSettings(free_first_minutes=2, commission_percent=25)
    )
    caller, consultant = await people(database, settings, funds=3 * RATE)
    c = await service.request(caller.id, consultant.id, Mode.CHAT)  # needs only 3 minutes
    await service.accept(c.id, consultant.id)
    await served(database, c.id)
    clock.advance(2 * 60)
    await service.tick()
    statement = await service.end(c.id, EndReason.COMPLETED)
    assert (statement.minutes, statement.promo_paise, statement.amount_paise) == (3, 2000, 1000)
    assert await balance(database, AccountKind.EARNINGS, consultant.id) == 3 * 750
    assert await balance(database, AccountKind.PROMOTIONS, None) == -2000
    # Only the first consultation is free: the next one needs the full minimum.
    with pytest.raises(InsufficientBalance) as err:
        await service.request(caller.id, consultant.id, Mode.CHAT)
    assert err.value.details["needed_paise"] == 5 * RATE
    await healthy(database)


async def test_per_consultant_commission_and_busy_consultant(
    service: ConsultationService, database: Database, settings: Settings
) -> None:
    caller, consultant = await people(database, settings, funds=10 * RATE)
    other = await create_user(database, settings, "user")
    await grant(database, other.id, 10 * RATE)
    await database.pool.execute(
        "UPDATE consultant_profiles SET commission_percent = 10 WHERE user_id = $1", consultant.id
    )
    c = await service.request(caller.id, consultant.id, Mode.VIDEO)
    assert c.rate_paise == 2000
    await service.accept(c.id, consultant.id)
    assert await balance(database, AccountKind.EARNINGS, consultant.id) == 1800
    with pytest.raises(ConsultantUnavailable) as busy:
        await service.request(other.id, consultant.id, Mode.CHAT)
    assert busy.value.details["reason"] == "busy"
    assert (await service.live_for_consultant(consultant.id)).id == c.id  # type: ignore[union-attr]
    await healthy(database)


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        BillingSettings().min_start_minutes = 1  # type: ignore[misc]
