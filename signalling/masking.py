"""Masking of contact details in chat (phone numbers, e-mail addresses, links).

Consultation marketplaces hide these so that deals stay on the platform. The patterns are
deliberately greedy: a false positive costs a few characters, a miss costs the business.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

MASK = "[hidden]"

_EMAIL = re.compile(
    r"[A-Za-z0-9._%+\-]+\s*(?:@|\(at\)|\[at\])\s*[A-Za-z0-9\-]+(?:\s*(?:\.|\(dot\)|\[dot\])\s*[A-Za-z0-9\-]+)+",
    re.IGNORECASE,
)
_TLD = r"(?:com|in|net|org|io|me|co|app|info|biz|xyz|link|ly|gg|ai)"
_LINK = re.compile(
    r"(?:\b(?:https?|ftp)://\S+|\bwww\.\S+|"
    rf"\b[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.{_TLD}\b(?:/\S*)?|"
    r"\b(?:wa\.me|t\.me|bit\.ly)/\S*)",
    re.IGNORECASE,
)
# Seven or more digits, allowing spaces, dots, dashes, parentheses and a leading + between them
# (E.164 numbers have up to 15 digits; Indian mobiles are 10 with optional +91 / 0).
_PHONE = re.compile(r"\+?\d(?:[\s().\-]*\d){6,}")
# Dates of birth are the heart of an astrology chat: never mask them as phone numbers.
_DATE = re.compile(
    r"\d{1,2}\s*[-/.]\s*\d{1,2}\s*[-/.]\s*(?:\d{4}|\d{2})|\d{4}\s*[-/.]\s*\d{1,2}\s*[-/.]\s*\d{1,2}"
)


def _phone(match: re.Match[str]) -> str:
    found = match.group(0)
    return found if _DATE.fullmatch(found.strip()) else MASK

_PATTERNS: dict[str, re.Pattern[str]] = {"email": _EMAIL, "link": _LINK, "phone": _PHONE}
# What every match of a pattern contains (an e-mail its "@" or "(at)"; a link its "://", "www."
# or ".<tld>"): a quick search for it spares ordinary chat text the full patterns, which try to
# match at every position and cost several times more than the rest of a chat message.
_HINTS: dict[str, re.Pattern[str]] = {
    "email": re.compile(r"@|\(at\)|\[at\]", re.IGNORECASE),
    "link": re.compile(rf"://|www\.|\.{_TLD}\b", re.IGNORECASE),
}
_ORDER = ("email", "link", "phone")


@dataclass(frozen=True, slots=True)
class MaskResult:
    text: str
    """The text with every match replaced by :data:`MASK`."""
    masked: bool
    """Whether anything was replaced."""


def mask(text: str, kinds: Iterable[str]) -> MaskResult:
    """Replace the enabled kinds of contact details in ``text``."""
    enabled = set(kinds)
    out = text
    for kind in _ORDER:
        if kind not in enabled:
            continue
        hint = _HINTS.get(kind)
        if hint is None or hint.search(out) is not None:
            out = _PATTERNS[kind].sub(_phone if kind == "phone" else MASK, out)
    return MaskResult(out, out != text)
