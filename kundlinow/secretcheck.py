"""Is a configured secret good enough for production?

Length alone is not: ``"a" * 32`` or the placeholder of ``.env.example`` are 32+ characters and
anyone can mint admin tokens with them (HS256 is a shared-key MAC, RFC 7518 §3.2). We refuse
known placeholders and values whose estimated entropy is low. The estimate is the empirical
Shannon entropy of the characters times the length: it is crude (it cannot see that a
dictionary phrase is guessable), but it is a lower bound for every random generator we document
(``openssl rand -hex 32`` ≈ 240 bits, ``secrets.token_urlsafe(32)`` ≈ 220 bits) and it catches
repeated strings; a value made of one repeated unit (``"abcdefghij" * 4``) is refused too.
"""

from __future__ import annotations

import math
from collections import Counter

MIN_ESTIMATED_BITS = 100
"""Refused below this estimate. Random secrets score well above it: 16 random bytes in hex
(128 bits of key) ≥ ~110, 32 bytes in hex or base64 ≥ ~185."""
MIN_DISTINCT_CHARACTERS = 10

KNOWN_PLACEHOLDERS: frozenset[str] = frozenset(
    {
        "change-me-to-a-long-random-string-of-32-chars-or-more",  # .env.example
        "test-secret-" + "x" * 32,  # tests/conftest.py
    }
)
"""Values published in this repository: whoever read them can sign tokens."""
PLACEHOLDER_WORDS: tuple[str, ...] = (
    "change-me", "changeme", "change_me", "replace-me", "replaceme", "your-secret",
    "placeholder", "example", "secret-key",
)
"""Fragments that only a value copied from documentation contains."""


def estimated_bits(value: str) -> float:
    """Length × empirical Shannon entropy per character (bits)."""
    if not value:
        return 0.0
    counts = Counter(value)
    per_char = -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())
    return per_char * len(value)


def weakness(value: str) -> str | None:
    """Why ``value`` must not protect production (``None``: acceptable)."""
    lowered = value.lower()
    if value in KNOWN_PLACEHOLDERS or any(word in lowered for word in PLACEHOLDER_WORDS):
        return "is a documented placeholder; generate one with `openssl rand -hex 32`"
    periodic = value in (value + value)[1:-1]
    bits = estimated_bits(value)
    if periodic or len(set(value)) < MIN_DISTINCT_CHARACTERS or bits < MIN_ESTIMATED_BITS:
        return (
            f"looks low-entropy (estimated {bits:.0f} bits, need"
            f" {MIN_ESTIMATED_BITS}); generate one with `openssl rand -hex 32`"
        )
    return None
