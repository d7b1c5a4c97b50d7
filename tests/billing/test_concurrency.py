"""Row locks under real concurrency: many transactions on one wallet at once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable

import asyncpg
import pytest

from billing import ledger
from billing.audit import load_snapshot
from billing.errors import IdempotencyConflict, InsufficientBalance
from billing.invariants import check_all
from billing.model import GATEWAY_CLEARING, PLATFORM_REVENUE, AccountKind, Transfer
from billing.payments import PaymentService
from core.db import Database
from kundlinow.config import Settings
from tests.billing.helpers import ManualClock, balance, grant
from tests.factories import create_user


async def debit(database: Database, user_id: uuid.UUID, paise: int, key: str) -> bool:
    async with database.pool.acquire() as conn, conn.transaction():
        wallet = await ledger.ensure_account(conn, AccountKind.WALLET, user_id)
        try:
            await ledger.post(
                conn, Transfer.build(key, "purchase", [(wallet, -paise), (PLATFORM_REVENUE, paise)])
            )
        except InsufficientBalance:
            return False
    return True


async def test_fifty_concurrent_debits_and_recharges_leave_the_exact_balance(
    database: Database, settings: Settings
) -> None:
    user = await create_user(database, settings)
    await grant(database, user.id, 7_500)
    clock = ManualClock()
    payments = PaymentService(database, None, clock, settings.billing)
    orders = []
    for i in range(25):
        orders.append(
            await database.pool.fetchval(
                "INSERT INTO payment_orders (user_id, gateway, gateway_order_id, amount_paise) "
                "VALUES ($1, 'simulator', $2, 1000) RETURNING gateway_order_id",
                user.id,
                f"order_c{i}",
            )
        )
    jobs: list[Awaitable[object]] = [debit(database, user.id, 300, f"buy:{i}") for i in range(25)]
    jobs += [payments._credit_outside(o, f"pay_c{i}", 1000) for i, o in enumerate(orders)]
    results = await asyncio.gather(*jobs)
    assert all(results[:25])
    assert await balance(database, AccountKind.WALLET, user.id) == 7_500 + 25 * 1000 - 25 * 300
    assert check_all(await load_snapshot(database.pool)) == []


async def test_concurrent_overdraw_attempts_never_go_below_zero(
    database: Database, settings: Settings
) -> None:
    user = await create_user(database, settings)
    await grant(database, user.id, 20_000)
    results = await asyncio.gather(*(debit(database, user.id, 1000, f"x:{i}") for i in range(50)))
    assert sum(results) == 20
    assert await balance(database, AccountKind.WALLET, user.id) == 0
    assert check_all(await load_snapshot(database.pool)) == []


async def test_idempotent_replay_and_conflict(database: Database, settings: Settings) -> None:
    user = await create_user(database, settings)
    async with database.pool.acquire() as conn, conn.transaction():
        wallet = await ledger.ensure_account(conn, AccountKind.WALLET, user.id)
    t = Transfer.build("recharge:pay_same", "grant", [(GATEWAY_CLEARING, -500), (wallet, 500)])
    firsts = await asyncio.gather(*(post_once(database, t) for _ in range(10)))
    assert len({p.transfer_id for p in firsts}) == 1
    assert sum(not p.replayed for p in firsts) == 1
    different = Transfer.build(
        "recharge:pay_same", "grant", [(GATEWAY_CLEARING, -900), (wallet, 900)]
    )
    with pytest.raises(IdempotencyConflict):
        await post_once(database, different)
    assert await balance(database, AccountKind.WALLET, user.id) == 500


async def post_once(database: Database, t: Transfer) -> ledger.Posted:
    async with database.pool.acquire() as conn, conn.transaction():
        return await ledger.post(conn, t)


async def test_database_refuses_unbalanced_entries_and_edits(
    database: Database, settings: Settings
) -> None:
    user = await create_user(database, settings)
    await grant(database, user.id, 1000)
    async with database.pool.acquire() as conn:
        tid = await conn.fetchval("SELECT id FROM ledger_transfers LIMIT 1")
        with pytest.raises(asyncpg.PostgresError):
            await conn.execute(
                "INSERT INTO ledger_entries (transfer_id, account_id, amount_paise) "
                "VALUES ($1, $2, 5)",
                tid,
                PLATFORM_REVENUE,
            )
        with pytest.raises(asyncpg.ForeignKeyViolationError):  # set-based check (0006)
            await conn.execute(
                "INSERT INTO ledger_entries (transfer_id, account_id, amount_paise) "
                "VALUES ($2, $1, 5), ($2, $1, -5)",
                PLATFORM_REVENUE,
                uuid.uuid4(),
            )
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await conn.execute(
                "INSERT INTO ledger_entries (transfer_id, account_id, amount_paise) "
                "VALUES ($1, gen_random_uuid(), -5), ($1, $2, 5)",
                tid,
                PLATFORM_REVENUE,
            )
        with pytest.raises(asyncpg.PostgresError):
            await conn.execute("DELETE FROM ledger_accounts")
        with pytest.raises(asyncpg.PostgresError):
            await conn.execute("UPDATE ledger_entries SET amount_paise = amount_paise + 1")
        with pytest.raises(asyncpg.PostgresError):
            await conn.execute("DELETE FROM ledger_transfers")
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "UPDATE ledger_accounts SET balance_paise = -1 WHERE kind = 'wallet'"
            )
    assert check_all(await load_snapshot(database.pool)) == []
