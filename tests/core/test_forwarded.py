"""Reading the client's address through trusted proxies (core/forwarded.py)."""

from __future__ import annotations

import pytest

from core.forwarded import client_address, parse_networks
from kundlinow.config import ConfigError, from_env

TRUSTED = parse_networks("10.0.0.0/8, 2001:db8::/32")


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "expected"),
    [
        ("203.0.113.5", "1.2.3.4", "203.0.113.5"),  # not from a proxy: the header is a lie
        ("10.0.0.2", "203.0.113.5", "203.0.113.5"),
        ("10.0.0.2", "6.6.6.6, 203.0.113.5, 10.1.1.1", "203.0.113.5"),  # chain of proxies
        ("10.0.0.2", "10.0.0.9, 10.1.1.1", "10.0.0.9"),  # all trusted: the left-most
        ("10.0.0.2", "203.0.113.5, not-an-ip", "10.0.0.2"),  # garbage: stop at the proxy
        ("10.0.0.2", "", "10.0.0.2"),
        ("2001:db8::1", "2001:db8::2, 2606:4700::1111", "2606:4700::1111"),
    ],
)
def test_client_address(peer: str, forwarded_for: str, expected: str) -> None:
    assert client_address(peer, forwarded_for, TRUSTED) == expected


def test_trusted_proxies_setting_is_validated() -> None:
    assert from_env({"TRUSTED_PROXIES": "10.0.0.0/8,192.0.2.7"}).trusted_proxies == parse_networks(
        "10.0.0.0/8, 192.0.2.7/32"
    )
    assert from_env({}).trusted_proxies == ()
    with pytest.raises(ConfigError, match=r"^TRUSTED_PROXIES: "):
        from_env({"TRUSTED_PROXIES": "10.0.0.0/8, nonsense"})
