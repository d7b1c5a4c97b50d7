"""Billing settings (built by kundlinow.config from the environment; nothing here reads it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RazorpaySettings:
    """Razorpay credentials; all empty means the dev gateway simulator is used."""

    key_id: str = ""
    """RAZORPAY_KEY_ID."""
    key_secret: str = ""
    """RAZORPAY_KEY_SECRET (signs checkout callbacks)."""
    webhook_secret: str = ""
    """RAZORPAY_WEBHOOK_SECRET (signs webhooks, X-Razorpay-Signature)."""
    base_url: str = "https://api.razorpay.com"
    """RAZORPAY_BASE_URL: the API root (tests point it at a local stand-in)."""
    timeout_seconds: float = 10.0
    """Per-call timeout of the synchronous SDK, which runs in a worker thread."""

    @property
    def configured(self) -> bool:
        return bool(self.key_id and self.key_secret)


@dataclass(frozen=True, slots=True)
class BillingSettings:
    """Everything the money code needs to know about its environment."""

    min_start_minutes: int = 5
    """MIN_START_MINUTES: available balance needed to start, in minutes of the rate."""
    commission_percent: int = 30
    """COMMISSION_PERCENT: platform share of each charge (overridable per consultant)."""
    free_first_minutes: int = 0
    """FREE_FIRST_MINUTES: minutes paid by promotions on a caller's first consultation."""
    minute_seconds: int = 60
    """BILLING_MINUTE_SECONDS: length of a billed minute (shorter in tests and demos)."""
    request_timeout_seconds: float = 60.0
    """REQUEST_TIMEOUT: a requested consultation not accepted within this ends with timeout."""
    internal_ticker: bool = True
    """BILLING_INTERNAL_TICKER: run the tick inside the server (turn off when cron runs it)."""
    tick_interval_seconds: float = 5.0
    """How often the internal ticker runs."""
    tick_batch: int = 10_000
    """Consultations charged per transaction (one statement) by a tick worker."""
    tick_workers: int = 1
    """Parallel tick workers (connections) per tick; they split the due consultations."""
    payout_minimum_paise: int = 100_000
    """Smallest payout request (₹1,000)."""
    payout_hold_days: int = 30
    """A payout's earnings hold expires after this many days if never settled."""
    recharge_min_paise: int = 100
    """Smallest recharge (₹1)."""
    recharge_max_paise: int = 10_000_000
    """Largest recharge (₹1,00,000)."""
    production: bool = False
    """ENV=production: the dev gateway simulator is refused."""
    razorpay: RazorpaySettings = RazorpaySettings()
    """Gateway credentials."""

    def __post_init__(self) -> None:
        if self.min_start_minutes < 1:
            raise ValueError("MIN_START_MINUTES must be >= 1")
        if not 0 <= self.commission_percent <= 100:
            raise ValueError("COMMISSION_PERCENT must be within 0..100")
        if self.free_first_minutes < 0:
            raise ValueError("FREE_FIRST_MINUTES must be >= 0")
        if self.minute_seconds < 1:
            raise ValueError("BILLING_MINUTE_SECONDS must be >= 1")
        if self.request_timeout_seconds <= 0:
            raise ValueError("REQUEST_TIMEOUT must be > 0")
