from __future__ import annotations

import pytest

from signalling.masking import KINDS, MASK, mask
from tests.signalling.masking_corpus import load

ALL = KINDS
CORPUS = load()


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


@pytest.mark.parametrize(
    ("text", "leak"),
    [
        ("nine eight seven six five four three two one zero", "three two one"),
        ("nau aath saat chhe paanch char teen do ek shunya", "do ek"),
        ("नौ आठ सात छह पांच चार तीन दो एक शून्य", "दो एक"),
        ("⑨⑧⑦⑥⑤④③②①⓪", "③②①"),
        ("⁹⁸⁷⁶⁵⁴³²¹⁰", "³²¹"),
        ("９８７６５ ４３２１０", "３２１"),
        ("मेरा नंबर ९८७६५४३२१० है", "३२१"),
        ("98,76,54,43,21", "43,21"),
        ("9876/54/3210", "3210"),
        ("98765_43210", "43210"),
        ("my number starts with 98765 and ends with 43210", "43210"),
        ("astroguru at gmail dot com", "astroguru"),
        ("kundali at the rate gmail", "kundali"),
        ("insta: astro_guru", "astro_guru"),
        ("find me @ravi_astro", "ravi_astro"),
        ("message me on whatsapp", "whatsapp"),
        ("telegram pe aao", "telegram"),
        ("98765\u200b43210", "43210"),
    ],
)
def test_obfuscated_contacts_are_masked(text: str, leak: str) -> None:
    result = mask(text, ALL)
    assert result.masked and leak not in result.text, result.text


def test_corpus_contacts_are_caught() -> None:
    """At least 95 % of the hand-written contact attempts lose their contact detail."""
    missed = [
        c.text
        for c in CORPUS.contacts
        if c.leak.lower() in (result := mask(c.text, ALL)).text.lower() or not result.masked
    ]
    assert len(CORPUS.contacts) >= 150
    assert len(missed) <= 0.05 * len(CORPUS.contacts), missed


def test_corpus_ordinary_messages_survive() -> None:
    """At most 1 % of ordinary astrology chat (dates, times, degrees, prices…) is altered."""
    altered = [text for text in CORPUS.ordinary if mask(text, ALL).text != text]
    assert len(CORPUS.ordinary) >= 300
    assert len(altered) <= 0.01 * len(CORPUS.ordinary), altered


def test_mask_maps_back_to_the_original_characters() -> None:
    # the fold changes lengths (NFKC "⑳" -> "20", keycaps dropped): the rest stays intact
    text = "Namaste 🙏 call ⑳⑲ ⑱⑰ ㊿ or 9️⃣8️⃣7️⃣6️⃣5️⃣4️⃣3️⃣2️⃣1️⃣0️⃣ — Guruji 🙏"
    assert mask(text, ALL).text == f"Namaste 🙏 call {MASK} or {MASK} — Guruji 🙏"
