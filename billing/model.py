"""Pure ledger values: accounts, entries and transfers. Imports nothing from web, sockets or jobs.

A transfer is a set of entries summing to zero (double entry). Its idempotency key is UNIQUE in
the database; replaying a key with the same content returns the first transfer, with different
content is an `IdempotencyConflict` (cf. TigerBeetle's `exists_with_different_*` results).
Sign convention: an entry's amount is added to its account's balance, so crediting a wallet is a
positive entry on the wallet and a negative one on the source (gateway clearing, promotions).
"""

from __future__ import annotations

import enum
import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from billing.money import Paise


class AccountKind(enum.StrEnum):
    WALLET = "wallet"
    EARNINGS = "earnings"
    RECEIVABLE = "receivable"
    """What a consultant owes the platform (refunds their earnings could not cover); <= 0."""
    PLATFORM_REVENUE = "platform_revenue"
    GATEWAY_CLEARING = "gateway_clearing"
    PROMOTIONS = "promotions"
    PAYOUTS_CLEARING = "payouts_clearing"


PLATFORM_REVENUE = uuid.UUID("00000000-0000-0000-0000-000000000001")
GATEWAY_CLEARING = uuid.UUID("00000000-0000-0000-0000-000000000002")
PROMOTIONS = uuid.UUID("00000000-0000-0000-0000-000000000003")
PAYOUTS_CLEARING = uuid.UUID("00000000-0000-0000-0000-000000000004")
SYSTEM_ACCOUNTS: dict[AccountKind, uuid.UUID] = {
    AccountKind.PLATFORM_REVENUE: PLATFORM_REVENUE,
    AccountKind.GATEWAY_CLEARING: GATEWAY_CLEARING,
    AccountKind.PROMOTIONS: PROMOTIONS,
    AccountKind.PAYOUTS_CLEARING: PAYOUTS_CLEARING,
}
SYSTEM_IDS = frozenset(SYSTEM_ACCOUNTS.values())
NEGATIVE_ALLOWED = frozenset(
    {AccountKind.GATEWAY_CLEARING, AccountKind.PROMOTIONS, AccountKind.RECEIVABLE}
)
"""Source accounts through which money enters the ledger, and consultants' receivables (the
platform's advance); all others stay >= 0."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One leg of a transfer."""

    account_id: uuid.UUID
    """The account whose balance changes."""
    amount: Paise
    """Added to the balance: positive credits, negative debits; never zero."""


@dataclass(frozen=True, slots=True)
class Transfer:
    """An immutable, balanced set of entries with an idempotency key."""

    key: str
    """Idempotency key, e.g. `recharge:<payment id>`, `charge:<consultation>:<minute>`."""
    kind: str
    """What the transfer is (`recharge`, `charge`, `refund`, `payout`, ...)."""
    entries: tuple[Entry, ...]
    """At least two entries summing to zero."""
    consultation_id: uuid.UUID | None = None
    """The consultation the money belongs to, if any."""
    memo: str = ""
    """Free text (refund reasons); not part of the content hash."""

    def __post_init__(self) -> None:
        if not self.key:
            raise ValueError("a transfer needs an idempotency key")
        problems = check_entries(self.entries)
        if problems:
            raise ValueError("; ".join(problems))

    @classmethod
    def build(
        cls,
        key: str,
        kind: str,
        legs: Iterable[tuple[uuid.UUID, int]],
        *,
        consultation_id: uuid.UUID | None = None,
        memo: str = "",
    ) -> Transfer:
        """Build from (account, paise) pairs, dropping zero legs."""
        entries = tuple(Entry(a, Paise(v)) for a, v in legs if v != 0)
        return cls(key, kind, entries, consultation_id, memo)

    @property
    def accounts(self) -> list[uuid.UUID]:
        """Accounts touched, sorted: the order in which they are locked."""
        return sorted({e.account_id for e in self.entries})

    @property
    def content_hash(self) -> str:
        """sha256 of the canonical content (kind and sorted entries), as stored in SQL."""
        return content_hash(self.kind, ((e.account_id, e.amount.value) for e in self.entries))


def charge_legs(
    wallet: uuid.UUID,
    earnings: uuid.UUID | None,
    amount: int,
    consultant_share: int,
    source: str,
) -> list[tuple[uuid.UUID, int]]:
    """What one charged minute (a `consultation_charges` row) moves: the payer (the caller's
    wallet, or promotions for a free minute) pays `amount`, the consultant's earnings get their
    share, platform revenue the rest. The charge statement (billing/charging.py) posts these legs
    summed per account over all the minutes it charges; zero legs are left out."""
    payer = PROMOTIONS if source == "promotion" else wallet
    legs = [(payer, -amount), (PLATFORM_REVENUE, amount - consultant_share)]
    if earnings is not None:
        legs.append((earnings, consultant_share))
    return [(a, v) for a, v in legs if v != 0]


def content_hash(kind: str, legs: Iterable[tuple[uuid.UUID, int]]) -> str:
    """Canonical content: `kind|acct:amount;acct:amount` sorted by account text then amount.

    The tick computes the same string in SQL for the charges it creates.
    """
    body = ";".join(f"{a}:{v}" for a, v in sorted((str(a), v) for a, v in legs))
    return hashlib.sha256(f"{kind}|{body}".encode()).hexdigest()


def check_entries(entries: Iterable[Entry]) -> list[str]:
    """Violations of the double-entry rule for one transfer's entries (empty when valid)."""
    items = list(entries)
    problems: list[str] = []
    if len(items) < 2:
        problems.append("a transfer needs at least two entries")
    if any(e.amount.value == 0 for e in items):
        problems.append("entries must not be zero")
    total = sum(e.amount.value for e in items)
    if total != 0:
        problems.append(f"entries sum to {total}, not zero")
    return problems
