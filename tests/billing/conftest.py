"""Billing fixtures on top of the shared ones in tests/conftest.py."""

from __future__ import annotations

import pytest

from billing.config import BillingSettings
from billing.consultations import ConsultationService
from kundlinow.db import Database
from tests.billing.helpers import ManualClock, RecordingBus


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
