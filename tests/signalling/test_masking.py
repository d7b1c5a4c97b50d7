from __future__ import annotations

import pytest

from signalling.masking import MASK, mask

ALL = ("phone", "email", "link")


@pytest.mark.parametrize(
    "text",
    [
        "call me on +91 98765 43210",
        "my number is 9876543210",
        "whatsapp 98765-43210 after 6",
        "(022) 2345-6789",
        "write to guru.ji@gmail.com",
        "guru (at) gmail (dot) com",
        "see https://example.org/x?y=1",
        "www.astro-deals.in",
        "join wa.me/919876543210",
        "instagram.com/astro",
    ],
)
def test_contact_details_are_masked(text: str) -> None:
    result = mask(text, ALL)
    assert result.masked and MASK in result.text
    assert not any(ch.isdigit() for ch in result.text.replace(MASK, "")) or "after 6" in text


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("email", "GURU [AT] GMAIL [DOT] COM"),
        ("email", "guru@gmail.com"),
        ("link", "HTTP://x"),
        ("link", "ftp://files"),
        ("link", "WWW.astro"),
        ("link", "see t.me/astroguru"),
        ("link", "bit.ly/abc"),
        ("link", "Astro-Deals.IN/today"),
    ],
)
def test_each_kind_is_masked_on_its_own(kind: str, text: str) -> None:
    # every form each pattern knows, with only that kind enabled (nothing else masks it)
    assert mask(text, (kind,)).masked


@pytest.mark.parametrize(
    "text",
    [
        "I was born on 12-05-1990 at 10:30 in Pune",
        "DOB 1990-05-12, 4:15 am",
        "born 3/7/85",
        "Saturn return at 29, mars in 7th house",
        "what about 2025?",
    ],
)
def test_astrology_details_survive(text: str) -> None:
    assert mask(text, ALL).text == text


def test_masking_is_configurable() -> None:
    text = "mail a@b.com or call 9876543210"
    assert mask(text, ()).text == text
    only_phone = mask(text, ("phone",)).text
    assert "a@b.com" in only_phone and "9876543210" not in only_phone
