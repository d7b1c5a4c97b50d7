"""Fixtures starting a real coturn on 127.0.0.1 (killed after the test)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aioice.ice
import pytest

from tests.turn.coturn import PROD_CONF, TEST_CONF, Coturn, CoturnProcess


@pytest.fixture
async def coturn(tmp_path: Path) -> AsyncIterator[Coturn]:
    """coturn with the test configuration (infra/coturn-test.conf): loopback peers allowed."""
    process = CoturnProcess(TEST_CONF, tmp_path, realm="kundlinow.test")
    server = await process.start()
    try:
        yield server
    finally:
        process.stop()


@pytest.fixture
async def coturn_production(tmp_path: Path) -> AsyncIterator[Coturn]:
    """coturn with the PRODUCTION coturn.conf, unchanged but for command-line overrides:
    127.0.0.1, free ports, a test secret, and no TLS/DTLS listeners (no certificate here)."""
    process = CoturnProcess(
        PROD_CONF, tmp_path, realm="turn.kundlinow.example", extra=("--no-tls", "--no-dtls")
    )
    server = await process.start()
    try:
        yield server
    finally:
        process.stop()


@pytest.fixture
def loopback_host_candidates(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make aioice gather host candidates on 127.0.0.1 only.

    aioice's ``get_host_addresses`` skips 127.0.0.1 and returns the machine's real interfaces;
    tests must not send packets to any non-loopback address, so the non-relay peer offers
    exactly one host candidate, 127.0.0.1 (RFC 8445 §5.1.1.1).
    """
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])
    yield
