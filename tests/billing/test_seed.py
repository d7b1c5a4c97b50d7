"""seed-demo gives the demo caller a welcome credit, once however often it runs."""

from __future__ import annotations

import uuid

from api.passwords import Passwords
from api.seed import seed_demo
from billing.model import AccountKind
from billing.seed import WELCOME_CREDIT_PAISE
from core.db import Database
from kundlinow.config import Settings
from tests.billing.helpers import balance


async def test_demo_caller_is_credited_once(database: Database, settings: Settings) -> None:
    passwords = Passwords()
    try:
        first_accounts, first_lines = await seed_demo(database, settings, passwords)
        _, second_lines = await seed_demo(database, settings, passwords)
    finally:
        passwords.close()
    callers = [a for a in first_accounts if a.account.role == "user"]
    assert callers and any("welcome credit" in line for line in first_lines)
    assert len(second_lines) == len(first_lines)
    for caller in callers:
        wallet = await balance(database, AccountKind.WALLET, uuid.UUID(caller.user_id))
        assert wallet == WELCOME_CREDIT_PAISE
