"""Masking of contact details in chat and profiles (phone numbers, e-mail, links, social apps).

Consultation marketplaces hide these so that deals stay on the platform. People who want to
move a client off it write "nine eight seven…", "९८७६५", "⑨⑧⑦", "guru at gmail dot com" or
"insta: guru_ji", so the text is first folded (:func:`normalise`: Unicode NFKC, the digit value
of every character that has one, lower case, invisible formatting characters dropped) and the
patterns run on the folded text; what they find is replaced in the original.

The patterns lean greedy: a false positive costs a few characters, a miss costs the business.
tests/signalling/data/masking_corpus.txt measures both (see tests/signalling/test_masking.py).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from signalling.masking_phone import Span, phone_spans

MASK = "[hidden]"

_TLD = r"(?:com|in|net|org|io|me|co|app|info|biz|xyz|link|ly|gg|ai)"
_LINK = re.compile(
    r"\b(?:https?|ftp)://\S+|\bwww\.\S+|"
    rf"\b[a-z0-9\-]+(?:\.[a-z0-9\-]+)*\.{_TLD}\b(?:/\S*)?|"
    r"\b(?:wa\.me|t\.me|bit\.ly)/\S*|"
    # "astroguru dot com", "guru (dot) in": a domain spelled out
    r"\b[a-z0-9][\w\-]*(?:\s*[(\[{]\s*dot\s*[)\]}]\s*|\s*\bdot\s*)" + _TLD + r"\b"
)
_LOCAL = r"[\w+\-](?:[\w.+\-]*[\w+\-])?(?:\s+dot\s+[\w+\-]+)*"
_LABEL = r"[a-z][\w\-]*"
_PROVIDER = (
    r"(?:g\s?mail|googlemail|yahoo|ymail|hotmail|outlook|rediff(?:mail)?|icloud"
    r"|proton(?:mail)?|live|aol|zoho)\b"
)
_AT_SIGN = r"\s*(?:@|[(\[{<]\s*(?:at|@)\s*[)\]}>])\s*"
_AT_WORD_TAIL = r"(?:\s*the\s*rate(?:\s*of)?)?\s*"  # Indian English reads "@" as "at the rate"
_AT_WORD = r"\s+at" + _AT_WORD_TAIL
_DOT_ANY = r"\s*(?:\.|[(\[{<]\s*(?:dot|\.)\s*[)\]}>]|\bdot\b)\s*"
# After the word "at" a bare "." must touch its labels: "I'm at home. In 1990…" is no address.
_DOT_TIGHT = r"(?:\.|\s*[(\[{<]\s*(?:dot|\.)\s*[)\]}>]\s*|\s*\bdot\b\s*)"
_EMAIL = re.compile(
    rf"{_LOCAL}{_AT_SIGN}{_LABEL}(?:{_DOT_ANY}{_LABEL})*"
    rf"|{_LOCAL}{_AT_WORD}{_LABEL}(?:{_DOT_TIGHT}{_LABEL})*{_DOT_TIGHT}{_TLD}\b"
    rf"|{_LOCAL}{_AT_WORD}{_PROVIDER}(?:{_DOT_TIGHT}{_LABEL})*"
)
_APPS = (
    r"wh?a?t+s+\s?a+p+|wp|[i1!|]nsta(?:gram)?|ig|tele\s?gra?m|tg|snap(?:chat)?|facebook|fb"
    r"|messenger|skype|viber|wechat|youtube|yt|g\s?pay|google\s?pay|phone\s?pe|paytm|discord"
    r"|twitter|(?:imo|signal)(?=\s+(?:app|pe|par|id|call|number))"
)
# An app name, and the handle that follows it ("insta: astro_guru", "skype id guru.sharma").
_SOCIAL = re.compile(
    rf"\b(?:{_APPS})\b(?:(?:\s*(?:id|handle|username|is|-|:|=))*\s*@?[a-z0-9]\w*[._\d][\w.]*\w)?"
    r"|(?<![\w@.])@[a-z_][\w.]*\w"  # a handle
    r"|\b[a-z0-9]+(?:_[a-z0-9]+)+\b"  # snake_case is a username, never chat
)
_SPELLED = re.compile(r"\b(?:[a-z][\s.*_\-]){3,}[a-z]\b")
_SPELLED_APP = re.compile(rf"(?:{_APPS}|{_PROVIDER})")

# What every match of a kind contains: a quick search spares ordinary text the full patterns,
# which try to match at every position.
_HINTS: dict[str, re.Pattern[str]] = {
    "email": re.compile(
        rf"@|[(\[{{<]\s*at|\bat{_AT_WORD_TAIL}(?:{_PROVIDER}|[a-z][\w\-]*(?:\.|\s*dot|\s*[(\[{{<]))"
    ),
    "link": re.compile(rf"://|www\.|\.{_TLD}\b|\bdot"),
}
KINDS = ("email", "link", "social", "phone")


@functools.lru_cache(maxsize=8192)
def _fold(ch: str) -> str:
    if "\u0900" <= ch <= "\u097f":
        value = unicodedata.decimal(ch, None)  # Devanagari digits; its letters stay as they are
        return ch if value is None else str(value)
    if unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return ""  # zero-width joiners, keycap and strike-through marks hide nothing
    return "".join(
        str(value) if (value := unicodedata.digit(c, None)) is not None else c.lower()
        for c in unicodedata.normalize("NFKC", ch)
    )


def normalise(text: str) -> tuple[str, list[int] | None]:
    """The folded text, and for each of its characters the index of the original one.

    ``None`` instead of the index list when both are the same length (ASCII text).
    """
    if text.isascii():
        return text.lower(), None
    parts: list[str] = []
    origin: list[int] = []
    for index, ch in enumerate(text):
        folded = ch.lower() if ch.isascii() else _fold(ch)
        parts.append(folded)
        origin.extend([index] * len(folded))
    return "".join(parts), origin


def _spelled_out(norm: str) -> list[Span]:
    """"w h a t s a p p", "G.m.a.i.l": letters spaced out to dodge the word patterns."""
    spans = []
    for match in _SPELLED.finditer(norm):
        letters = re.sub(r"[^a-z]", "", match.group())
        if _SPELLED_APP.search(letters):
            spans.append(match.span())
    return spans


def _spans(norm: str, enabled: frozenset[str]) -> list[Span]:
    spans: list[Span] = []
    if "email" in enabled and _HINTS["email"].search(norm):
        spans += [m.span() for m in _EMAIL.finditer(norm)]
    if "link" in enabled and _HINTS["link"].search(norm):
        spans += [m.span() for m in _LINK.finditer(norm)]
    if "social" in enabled:
        spans += [m.span() for m in _SOCIAL.finditer(norm)] + _spelled_out(norm)
    if "phone" in enabled:
        spans += phone_spans(norm)
    return spans


def _merged(spans: list[Span]) -> list[Span]:
    merged: list[Span] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


@dataclass(frozen=True, slots=True)
class MaskResult:
    text: str
    """The text with every match replaced by :data:`MASK`."""
    masked: bool
    """Whether anything was replaced."""


def mask(text: str, kinds: Iterable[str]) -> MaskResult:
    """Replace the enabled kinds (of :data:`KINDS`) of contact details in ``text``."""
    enabled = frozenset(kinds)
    if not enabled:
        return MaskResult(text, False)
    norm, origin = normalise(text)
    spans = _merged(_spans(norm, enabled))
    if not spans:
        return MaskResult(text, False)
    out: list[str] = []
    cursor = 0
    for start, end in spans:
        if origin is not None:
            start, end = origin[start], origin[end - 1] + 1
            while end < len(text) and not text[end].isascii() and not _fold(text[end]):
                end += 1  # the keycap or strike-through marks of the last digit go too
        out += [text[cursor:start], MASK]
        cursor = end
    out.append(text[cursor:])
    return MaskResult("".join(out), True)
