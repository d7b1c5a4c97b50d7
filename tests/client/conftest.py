"""Browser tests wait generously: on a loaded machine (two cores, several test runs) a screen
can take seconds to render, far past Playwright's 5 s default for an expectation."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.async_api import expect

EXPECT_MS = 20_000
PLAYWRIGHT_DEFAULT_MS = 5_000


@pytest.fixture(autouse=True)
def patient_expectations() -> Iterator[None]:
    expect.set_options(timeout=EXPECT_MS)
    yield
    expect.set_options(timeout=PLAYWRIGHT_DEFAULT_MS)
