"""Billing fixtures on top of the shared ones in tests/conftest.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from billing.config import BillingSettings, RazorpaySettings
from billing.consultations import ConsultationService
from core.db import Database
from kundlinow.app import create_app
from kundlinow.config import Settings
from tests.billing.helpers import ManualClock, RecordingBus
from tests.billing.razorpay_standin import RazorpayStandIn


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def bus() -> RecordingBus:
    return RecordingBus()


@pytest.fixture
def billing_settings() -> BillingSettings:
    return BillingSettings()


@pytest.fixture
def service(
    database: Database, bus: RecordingBus, clock: ManualClock, billing_settings: BillingSettings
) -> ConsultationService:
    return ConsultationService(database, bus, clock, billing_settings)


@pytest.fixture
def razorpay() -> RazorpayStandIn:
    return RazorpayStandIn()


@pytest.fixture
async def razorpay_url(
    razorpay: RazorpayStandIn, aiohttp_server: Callable[[web.Application], Awaitable[TestServer]]
) -> str:
    server = await aiohttp_server(razorpay.app())
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
def paid_settings(settings: Settings, razorpay: RazorpayStandIn, razorpay_url: str) -> Settings:
    """Settings with Razorpay keys pointing the real SDK at the stand-in."""
    keys = RazorpaySettings(
        key_id=razorpay.key_id,
        key_secret=razorpay.key_secret,
        webhook_secret=razorpay.webhook_secret,
        base_url=razorpay_url,
        timeout_seconds=5.0,
    )
    return replace(
        settings, billing=replace(settings.billing, razorpay=keys, internal_ticker=False)
    )


@pytest.fixture
async def pay_client(
    aiohttp_client: Callable[[web.Application], Awaitable[TestClient[Any, Any]]],
    paid_settings: Settings,
) -> TestClient[Any, Any]:
    """The real app configured for Razorpay (the stand-in)."""
    return await aiohttp_client(create_app(paid_settings))
