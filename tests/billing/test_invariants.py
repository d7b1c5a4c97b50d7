"""The charge-ledger invariant catches what balanced transfers and consistent balances do not."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime

from billing.invariants import (
    ChargeRow,
    ConsultationRow,
    EntryRow,
    TransferRow,
    check_charge_transfers,
    check_transfers_balanced,
)
from billing.model import PLATFORM_REVENUE, PROMOTIONS

WALLET, EARNINGS = uuid.uuid4(), uuid.uuid4()
CONSULT = uuid.uuid4()
BATCH = uuid.uuid4()
STARTED = datetime(2026, 1, 1, tzinfo=UTC)


def consultation(cid: uuid.UUID = CONSULT) -> ConsultationRow:
    return ConsultationRow(
        cid, "active", None, 1000, 60, STARTED, None, 2, 1000, 1000, WALLET, EARNINGS
    )


def charges() -> list[ChargeRow]:
    """Minute 1 free (promotions), minute 2 from the wallet; 70% to the consultant."""
    return [
        ChargeRow(CONSULT, 1, 1000, "promotion", BATCH, None, 700),
        ChargeRow(CONSULT, 2, 1000, "wallet", BATCH, None, 700),
    ]


def batch_entries() -> list[EntryRow]:
    """What the charge statement posts for those two minutes: one entry per account."""
    return [
        EntryRow(BATCH, WALLET, -1000, CONSULT),
        EntryRow(BATCH, EARNINGS, 1400, CONSULT),
        EntryRow(BATCH, PROMOTIONS, -1000),
        EntryRow(BATCH, PLATFORM_REVENUE, 600),
    ]


TRANSFERS = [TransferRow(BATCH, f"charges:{BATCH}", "charge")]


def test_aggregated_entries_matching_the_charge_rows_pass() -> None:
    assert check_charge_transfers(charges(), [consultation()], TRANSFERS, batch_entries()) == []


def test_a_paisa_moved_between_legs_is_caught_though_the_transfer_balances() -> None:
    entries = batch_entries()
    entries[1] = dataclasses.replace(entries[1], amount=1401)
    entries[3] = dataclasses.replace(entries[3], amount=599)
    assert check_transfers_balanced(entries) == []
    problems = check_charge_transfers(charges(), [consultation()], TRANSFERS, entries)
    assert len(problems) == 2 and all(str(BATCH) in p for p in problems)


def test_an_entry_naming_the_wrong_consultation_is_caught() -> None:
    other = uuid.uuid4()
    entries = batch_entries()
    entries[0] = dataclasses.replace(entries[0], consultation_id=other)
    problems = check_charge_transfers(
        charges(), [consultation(), consultation(other)], TRANSFERS, entries
    )
    assert any(str(other) in p for p in problems)


def test_a_reversal_must_undo_exactly_its_charge_row() -> None:
    reversal = uuid.uuid4()
    rows = charges()
    rows[1] = dataclasses.replace(rows[1], reversal_transfer_id=reversal)
    transfers = [*TRANSFERS, TransferRow(reversal, "reversal:x:2", "charge_reversal", CONSULT)]
    undo = [
        EntryRow(reversal, WALLET, 1000),
        EntryRow(reversal, EARNINGS, -700),
        EntryRow(reversal, PLATFORM_REVENUE, -300),
    ]
    entries = batch_entries() + undo
    assert check_charge_transfers(rows, [consultation()], transfers, entries) == []
    short = [*batch_entries(), *undo[:2], EntryRow(reversal, PLATFORM_REVENUE, -299)]
    assert check_charge_transfers(rows, [consultation()], transfers, short) != []
