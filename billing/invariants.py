"""Ledger invariants as pure functions returning violations (empty list = healthy).

The same checks run after every step of the randomised state machine in tests/billing and in
`kundlinow billing check`. `billing.audit.load_snapshot` reads a `Snapshot` from the database.
"""

from __future__ import annotations

import math
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from billing.model import NEGATIVE_ALLOWED, SYSTEM_IDS, AccountKind, charge_legs


@dataclass(frozen=True, slots=True)
class AccountRow:
    id: uuid.UUID
    kind: AccountKind
    balance: int
    owner_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class EntryRow:
    transfer_id: uuid.UUID
    account_id: uuid.UUID
    amount: int
    consultation_id: uuid.UUID | None = None
    """Set on the entries of a charge transfer (0010): the consultation the leg belongs to."""


@dataclass(frozen=True, slots=True)
class TransferRow:
    id: uuid.UUID
    key: str
    kind: str
    consultation_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class HoldRow:
    id: uuid.UUID
    account_id: uuid.UUID
    amount: int
    state: str
    posted: int
    transfer_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class ChargeRow:
    consultation_id: uuid.UUID
    minute: int
    amount: int
    source: str
    transfer_id: uuid.UUID
    reversal_transfer_id: uuid.UUID | None
    consultant_share: int

    @property
    def reversed(self) -> bool:
        return self.reversal_transfer_id is not None


@dataclass(frozen=True, slots=True)
class ConsultationRow:
    id: uuid.UUID
    state: str
    end_reason: str | None
    rate: int
    minute_seconds: int
    started_at: datetime | None
    ended_at: datetime | None
    minutes_charged: int
    amount_charged: int
    promo: int
    caller_account_id: uuid.UUID | None = None
    consultant_account_id: uuid.UUID | None = None
    unserved: str | None = None
    """Set (0011) when the consultation was not owed at all: every minute reversed at its end."""


@dataclass(frozen=True, slots=True)
class OrderRow:
    gateway_order_id: str
    amount: int
    status: str
    transfer_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the invariants look at, read in one REPEATABLE READ transaction."""

    accounts: tuple[AccountRow, ...] = ()
    transfers: tuple[TransferRow, ...] = ()
    entries: tuple[EntryRow, ...] = ()
    holds: tuple[HoldRow, ...] = ()
    charges: tuple[ChargeRow, ...] = ()
    consultations: tuple[ConsultationRow, ...] = ()
    orders: tuple[OrderRow, ...] = ()
    extra: dict[str, int] = field(default_factory=dict)


def check_transfers_balanced(entries: Iterable[EntryRow]) -> list[str]:
    """Every transfer's entries sum to zero and no entry is zero."""
    sums: dict[uuid.UUID, int] = defaultdict(int)
    out = []
    for e in entries:
        sums[e.transfer_id] += e.amount
        if e.amount == 0:
            out.append(f"zero entry in transfer {e.transfer_id}")
    out += [f"transfer {t} sums to {s}" for t, s in sums.items() if s != 0]
    return out


def check_balances(accounts: Iterable[AccountRow], entries: Iterable[EntryRow]) -> list[str]:
    """Each balance equals the sum of its entries; only source accounts may be negative."""
    sums: dict[uuid.UUID, int] = defaultdict(int)
    for e in entries:
        sums[e.account_id] += e.amount
    out = []
    for a in accounts:
        if a.balance != sums.get(a.id, 0):
            out.append(f"account {a.id} ({a.kind}) balance {a.balance} != {sums.get(a.id, 0)}")
        if a.balance < 0 and a.kind not in NEGATIVE_ALLOWED:
            out.append(f"account {a.id} ({a.kind}) is below zero: {a.balance}")
        if a.balance > 0 and a.kind is AccountKind.RECEIVABLE:
            out.append(f"receivable {a.id} is above zero: {a.balance}")
    return out


def check_holds(holds: Iterable[HoldRow], accounts: Iterable[AccountRow]) -> list[str]:
    """Holds are resolved at most once, never post more than held, never over-reserve
    earnings (a payout's hold binds: 0011)."""
    out = []
    open_by_account: dict[uuid.UUID, int] = defaultdict(int)
    for h in holds:
        if h.state not in ("open", "posted", "voided"):
            out.append(f"hold {h.id} in unknown state {h.state}")
        if not 0 <= h.posted <= h.amount:
            out.append(f"hold {h.id} posted {h.posted} of {h.amount}")
        if h.state != "posted" and h.posted != 0:
            out.append(f"hold {h.id} is {h.state} but posted {h.posted}")
        if h.state == "posted" and h.posted > 0 and h.transfer_id is None:
            out.append(f"hold {h.id} posted without a transfer")
        if h.state == "open":
            open_by_account[h.account_id] += h.amount
    for a in accounts:
        if a.kind is AccountKind.EARNINGS and open_by_account.get(a.id, 0) > a.balance:
            out.append(f"earnings {a.id} hold {open_by_account[a.id]} > balance {a.balance}")
    return out


def check_charges(
    charges: Iterable[ChargeRow], consultations: Iterable[ConsultationRow]
) -> list[str]:
    """Each (consultation, minute) charged at most once; minutes 1..n contiguous; totals agree."""
    out = []
    items = list(charges)
    dupes = Counter((c.consultation_id, c.minute) for c in items)
    out += [f"minute {m} of {cid} charged {n} times" for (cid, m), n in dupes.items() if n > 1]
    by_consult: dict[uuid.UUID, list[ChargeRow]] = defaultdict(list)
    for c in items:
        if not c.reversed:
            by_consult[c.consultation_id].append(c)
    for cons in consultations:
        mine = sorted(by_consult.get(cons.id, []), key=lambda c: c.minute)
        minutes = [c.minute for c in mine]
        if minutes != list(range(1, len(minutes) + 1)):
            out.append(f"consultation {cons.id} charged minutes {minutes} are not 1..n")
        if cons.minutes_charged != len(mine):
            out.append(f"consultation {cons.id} minutes {cons.minutes_charged} != {len(mine)}")
        wallet = sum(c.amount for c in mine if c.source == "wallet")
        promo = sum(c.amount for c in mine if c.source == "promotion")
        if cons.amount_charged != wallet:
            out.append(f"consultation {cons.id} amount_charged {cons.amount_charged} != {wallet}")
        if cons.promo != promo:
            out.append(f"consultation {cons.id} promo {cons.promo} != {promo}")
        if any(c.amount != cons.rate for c in mine):
            out.append(f"consultation {cons.id} has a charge different from its rate")
    return out


def check_charge_transfers(
    charges: Iterable[ChargeRow],
    consultations: Iterable[ConsultationRow],
    transfers: Iterable[TransferRow],
    entries: Iterable[EntryRow],
    ledger_accounts: Iterable[AccountRow] = (),
) -> list[str]:
    """Every paisa of a charge is accounted for: the entries of each `charge` transfer are, per
    account and consultation, exactly the sum of its charge rows' legs (`charge_legs`), and each
    `charge_reversal` exactly undoes the rows it reverses (the share it takes back may come in
    part from the consultant's receivable: billing.settlement). Wallet and earnings legs are
    matched with the consultation they name (the entry's own, else its transfer's: what wallet
    history shows); system account legs are matched per transfer."""
    accounts = {c.id: (c.caller_account_id, c.consultant_account_id) for c in consultations}
    owned = list(ledger_accounts)
    earnings_of = {a.owner_id: a.id for a in owned if a.kind is AccountKind.EARNINGS}
    as_earnings = {
        a.id: earnings_of.get(a.owner_id, a.id) for a in owned if a.kind is AccountKind.RECEIVABLE
    }
    transfer_of = {t.id: t for t in transfers}
    expected: dict[tuple[uuid.UUID, uuid.UUID, uuid.UUID | None], int] = defaultdict(int)
    out = []
    for ch in charges:
        wallet, earnings = accounts.get(ch.consultation_id, (None, None))
        if wallet is None:
            out.append(f"charge {ch.consultation_id}:{ch.minute} has no consultation wallet")
            continue
        legs = charge_legs(wallet, earnings, ch.amount, ch.consultant_share, ch.source)
        for transfer_id, kind, sign in (
            (ch.transfer_id, "charge", 1),
            (ch.reversal_transfer_id, "charge_reversal", -1),
        ):
            if transfer_id is None:
                continue
            t = transfer_of.get(transfer_id)
            if t is None or t.kind != kind:
                out.append(f"charge {ch.consultation_id}:{ch.minute} {kind} is not a {kind}")
            for account, paise in legs:
                who = None if account in SYSTEM_IDS else ch.consultation_id
                expected[(transfer_id, account, who)] += sign * paise
    actual: dict[tuple[uuid.UUID, uuid.UUID, uuid.UUID | None], int] = defaultdict(int)
    for e in entries:
        t = transfer_of.get(e.transfer_id)
        if t is None or t.kind not in ("charge", "charge_reversal"):
            continue
        who = None if e.account_id in SYSTEM_IDS else (e.consultation_id or t.consultation_id)
        account = as_earnings.get(e.account_id, e.account_id)
        actual[(e.transfer_id, account, who)] += e.amount
    for key in expected.keys() | actual.keys():
        if expected.get(key, 0) != actual.get(key, 0):
            transfer_id, account, who = key
            out.append(
                f"transfer {transfer_id} moves {actual.get(key, 0)} on account {account} "
                f"(consultation {who}), its charge rows {expected.get(key, 0)}"
            )
    return out


def minutes_due(started_at: datetime, at: datetime, minute_seconds: int) -> int:
    """Minutes payable for a session running at (or ending at) `at`: minute k is due once k-1
    minutes have run (prepaid whole minutes, so at least 1)."""
    elapsed = (at - started_at).total_seconds()
    return max(1, math.floor(elapsed / minute_seconds) + 1) if elapsed >= 0 else 1


def check_ended_consultations(consultations: Iterable[ConsultationRow]) -> list[str]:
    """Every elapsed minute charged while funds allowed, and none past the end."""
    out = []
    for c in consultations:
        if c.state != "ended" or c.started_at is None or c.ended_at is None:
            if c.state != "active" and c.minutes_charged:
                out.append(f"consultation {c.id} never started but charged {c.minutes_charged}")
            continue
        owed = minutes_due(c.started_at, c.ended_at, c.minute_seconds)
        if c.unserved is not None:
            if c.minutes_charged:
                out.append(f"consultation {c.id} ({c.unserved}) kept {c.minutes_charged} minutes")
        elif c.end_reason == "insufficient_balance":
            if c.minutes_charged > owed:
                out.append(f"consultation {c.id} charged {c.minutes_charged} > owed {owed}")
        elif c.minutes_charged != owed:
            out.append(f"consultation {c.id} ({c.end_reason}) paid {c.minutes_charged} of {owed}")
    return out


def check_active_caught_up(consultations: Iterable[ConsultationRow], now: datetime) -> list[str]:
    """Right after a tick at `now`: every active session has paid every due minute."""
    out = []
    for c in consultations:
        if c.state == "active" and c.started_at is not None:
            due = minutes_due(c.started_at, now, c.minute_seconds)
            if c.minutes_charged != due:
                out.append(f"active consultation {c.id} charged {c.minutes_charged}, due {due}")
    return out


def check_orders(
    orders: Iterable[OrderRow], transfers: Iterable[TransferRow], entries: Iterable[EntryRow]
) -> list[str]:
    """Each payment credited exactly once, for exactly its order's amount."""
    out = []
    recharges = {t.id: t for t in transfers if t.kind == "recharge"}
    credit: dict[uuid.UUID, int] = defaultdict(int)
    for e in entries:
        if e.transfer_id in recharges and e.amount > 0:
            credit[e.transfer_id] += e.amount
    paid = [o for o in orders if o.status == "paid"]
    used = Counter(o.transfer_id for o in paid)
    out += [f"recharge transfer {t} credits {n} orders" for t, n in used.items() if n > 1]
    for o in orders:
        if o.status == "paid":
            if o.transfer_id not in recharges:
                out.append(f"order {o.gateway_order_id} paid without a recharge transfer")
            elif credit[o.transfer_id] != o.amount:
                got = credit[o.transfer_id]
                out.append(f"order {o.gateway_order_id} credited {got} != {o.amount}")
        elif o.transfer_id is not None:
            out.append(f"order {o.gateway_order_id} is {o.status} but has a transfer")
    if len(recharges) != len(paid):
        out.append(f"{len(recharges)} recharge transfers for {len(paid)} paid orders")
    return out


def check_all(snapshot: Snapshot) -> list[str]:
    """Every invariant over one snapshot."""
    return [
        *check_transfers_balanced(snapshot.entries),
        *check_balances(snapshot.accounts, snapshot.entries),
        *check_holds(snapshot.holds, snapshot.accounts),
        *check_charges(snapshot.charges, snapshot.consultations),
        *check_charge_transfers(
            snapshot.charges,
            snapshot.consultations,
            snapshot.transfers,
            snapshot.entries,
            snapshot.accounts,
        ),
        *check_ended_consultations(snapshot.consultations),
        *check_orders(snapshot.orders, snapshot.transfers, snapshot.entries),
    ]
