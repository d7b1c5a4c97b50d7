"""Taking money back from a consultant (issue #11, money points 1, 2 and 6): payout holds bind,
a shortfall becomes a receivable, ending never fails for money reasons, and a consultation that
never carried service is not charged."""

from __future__ import annotations

import uuid
from datetime import timedelta

import asyncpg
import pytest

from billing import ledger
from billing.audit import load_snapshot
from billing.config import BillingSettings
from billing.consultations import ConsultationService, EndReason, Mode, State
from billing.errors import InsufficientEarnings
from billing.invariants import check_all
from billing.lifecycle import Unserved
from billing.model import PROMOTIONS, AccountKind, Transfer
from billing.payouts import PayoutService, SimulatedBankRail
from billing.refunds import refund_consultation
from billing.wallets import WalletReader
from core.db import Database
from kundlinow.config import Settings
from tests.billing.helpers import ManualClock, answered, balance, grant
from tests.factories import TestUser as User
from tests.factories import create_user

RATE = 1000  # chat rate of tests.factories consultants; share 700 at the default 30 %
SMALL_PAYOUTS = BillingSettings(payout_minimum_paise=1_000)


async def healthy(database: Database) -> None:
    assert check_all(await load_snapshot(database.pool)) == []


async def chat_minutes(
    service: ConsultationService,
    clock: ManualClock,
    database: Database,
    caller: User,
    consultant: User,
    seconds: int,
) -> uuid.UUID:
    """A chat the consultant answered, run for `seconds` and completed."""
    c = await service.request(caller.id, consultant.id, Mode.CHAT)
    await service.accept(c.id, consultant.id)
    await answered(database, c.id, clock.now() + timedelta(seconds=5))
    clock.advance(seconds)
    await service.end(c.id, EndReason.COMPLETED)
    return c.id


async def paid_out(
    database: Database, clock: ManualClock, consultant: uuid.UUID, paise: int
) -> None:
    payouts = PayoutService(database, clock, SMALL_PAYOUTS)
    p = await payouts.request(consultant, paise)
    await payouts.decide(p.id, consultant, approve=True)
    assert [x.state for x in await payouts.run(SimulatedBankRail())] == ["posted"]


async def test_refund_leaves_an_approved_payout_whole_and_books_a_receivable(
    service: ConsultationService, clock: ManualClock, database: Database, settings: Settings
) -> None:
    caller = await create_user(database, settings, "user")
    astro = await create_user(database, settings, "consultant")
    other = await create_user(database, settings, "consultant")
    admin = await create_user(database, settings, "admin")
    await grant(database, caller.id, 20 * RATE)
    cid = await chat_minutes(service, clock, database, caller, astro, 150)  # 3 min: 2,100 share
    payouts = PayoutService(database, clock, SMALL_PAYOUTS)
    first = await payouts.request(astro.id, 2_100)
    await payouts.decide(first.id, admin.id, approve=True)
    clock.advance(1)
    await chat_minutes(service, clock, database, caller, other, 90)  # 1,400 share
    second = await payouts.request(other.id, 1_400)
    await payouts.decide(second.id, admin.id, approve=True)
    # The whole consultation is refunded while the payout holding all of its share is approved.
    await refund_consultation(database, cid, 3 * RATE, "no show", admin.id, "t-1")
    assert await balance(database, AccountKind.EARNINGS, astro.id) == 2_100  # the hold binds
    assert await balance(database, AccountKind.RECEIVABLE, astro.id) == -2_100
    summary = await WalletReader(database).summary(astro.id, AccountKind.EARNINGS)
    assert (summary["available_paise"], summary["owed_paise"]) == (0, 2_100)
    settled = await payouts.run(SimulatedBankRail())
    assert sorted(p.state for p in settled) == ["posted", "posted"]
    assert await balance(database, AccountKind.EARNINGS, astro.id) == 0
    # Later earnings pay the receivable back before any of them can be paid out.
    clock.advance(1)
    await chat_minutes(service, clock, database, caller, astro, 30)
    with pytest.raises(InsufficientEarnings):
        await payouts.request(astro.id, 1_000)
    assert await balance(database, AccountKind.RECEIVABLE, astro.id) == -1_400
    assert await balance(database, AccountKind.EARNINGS, astro.id) == 0
    await healthy(database)


async def test_the_database_refuses_earnings_below_their_holds(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    astro = await create_user(database, settings, "consultant")
    async with database.pool.acquire() as conn, conn.transaction():
        earn = await ledger.ensure_account(conn, AccountKind.EARNINGS, astro.id)
        await ledger.post(
            conn,
            Transfer.build("bonus", "bonus", [(PROMOTIONS, -5_000), (earn, 5_000)]),
        )
    await PayoutService(database, clock, SMALL_PAYOUTS).request(astro.id, 4_000)
    with pytest.raises(asyncpg.CheckViolationError):
        async with database.pool.acquire() as conn, conn.transaction():
            await ledger.post(
                conn,
                Transfer.build("take", "adjust", [(earn, -2_000), (PROMOTIONS, 2_000)]),
                allow_into_holds=True,
            )
    assert await balance(database, AccountKind.EARNINGS, astro.id) == 5_000


async def test_back_dated_end_after_a_payout_still_ends_and_reverses(
    service: ConsultationService, clock: ManualClock, database: Database, settings: Settings
) -> None:
    caller = await create_user(database, settings, "user")
    astro = await create_user(database, settings, "consultant")
    await grant(database, caller.id, 20 * RATE)
    c = await service.request(caller.id, astro.id, Mode.CHAT)
    await service.accept(c.id, astro.id)
    await answered(database, c.id, clock.now() + timedelta(seconds=5))
    dropped = clock.advance(70)  # the caller dropped in minute 2
    clock.advance(200)
    await service.tick()  # minutes 1..5 charged: 3,500 earned
    await paid_out(database, clock, astro.id, 3_500)
    statement = await service.end(c.id, EndReason.DISCONNECTED, ended_at=dropped)
    assert statement.consultation.state is State.ENDED and statement.minutes == 2
    assert await balance(database, AccountKind.WALLET, caller.id) == 18 * RATE
    assert await balance(database, AccountKind.RECEIVABLE, astro.id) == -2_100
    clock.advance(120)
    assert (await service.tick()).charged_minutes == 0
    await healthy(database)


@pytest.mark.parametrize("mode", [Mode.VOICE, Mode.VIDEO])
async def test_a_call_without_media_is_refunded_at_end(
    service: ConsultationService,
    clock: ManualClock,
    database: Database,
    settings: Settings,
    mode: Mode,
) -> None:
    caller = await create_user(database, settings, "user")
    astro = await create_user(database, settings, "consultant")
    await grant(database, caller.id, 20_000)
    c = await service.request(caller.id, astro.id, mode)
    await service.accept(c.id, astro.id)
    clock.advance(150)
    await service.tick()
    statement = await service.end(c.id, EndReason.DISCONNECTED)
    assert statement.minutes == 0 and statement.amount_paise == 0
    receipt = statement.to_json()
    assert receipt["auto_refund"] == {"reason": "no_media", "amount_paise": 3 * c.rate_paise}
    assert await balance(database, AccountKind.WALLET, caller.id) == 20_000
    assert await balance(database, AccountKind.EARNINGS, astro.id) == 0
    # With media, the same call is charged.
    clock.advance(10)
    c = await service.request(caller.id, astro.id, mode)
    await service.accept(c.id, astro.id)
    assert await service.media_started(c.id)
    assert not await service.media_started(c.id)  # the first media only
    clock.advance(150)
    statement = await service.end(c.id, EndReason.COMPLETED)
    assert statement.minutes == 3 and statement.to_json()["auto_refund"] is None
    await healthy(database)


async def test_a_chat_the_consultant_never_answered_in_its_first_minute_is_refunded(
    service: ConsultationService, clock: ManualClock, database: Database, settings: Settings
) -> None:
    caller = await create_user(database, settings, "user")
    astro = await create_user(database, settings, "consultant")
    await grant(database, caller.id, 20 * RATE)
    c = await service.request(caller.id, astro.id, Mode.CHAT)
    await service.accept(c.id, astro.id)
    await answered(database, c.id, clock.now() + timedelta(seconds=61))  # too late
    clock.advance(150)
    await service.tick()
    statement = await service.end(c.id, EndReason.COMPLETED)
    assert statement.to_json()["auto_refund"] == {"reason": "unanswered", "amount_paise": 3 * RATE}
    assert statement.consultation.to_json()["unserved"] == "unanswered"
    assert await balance(database, AccountKind.WALLET, caller.id) == 20 * RATE
    await healthy(database)


async def test_a_silent_call_the_tick_ends_for_lack_of_balance_is_refunded_too(
    service: ConsultationService, clock: ManualClock, database: Database, settings: Settings
) -> None:
    caller = await create_user(database, settings, "user")
    astro = await create_user(database, settings, "consultant")
    await grant(database, caller.id, 5 * 1500)  # five minutes of voice
    c = await service.request(caller.id, astro.id, Mode.VOICE)
    await service.accept(c.id, astro.id)
    clock.advance(600)
    report = await service.tick()
    assert report.ended_insufficient == [c.id]
    ended = await service.get(c.id)
    assert (ended.end_reason, ended.minutes_charged) == (EndReason.INSUFFICIENT_BALANCE, 0)
    assert (ended.unserved, ended.auto_refunded_paise) == (Unserved.NO_MEDIA, 5 * 1500)
    assert await balance(database, AccountKind.WALLET, caller.id) == 5 * 1500
    await healthy(database)
