"""Finding phone numbers in normalised chat text, however they are spelled.

Works on text already folded by :func:`signalling.masking.normalise` (lower case, every digit of
any script as an ASCII digit, formatting characters dropped). A number is a chain of *pieces*:
digit groups and number words (English, Hinglish and Devanagari "nine", "nau", "नौ"), joined by
separators or, loosely, by a few ordinary words ("98765 and then 43210"). Astrology chat is full
of numbers too, so dates, clock times, amounts, ordinals ("7th") and quantities ("2 years",
"108 times") break a chain instead of joining it.

A chain is a phone number when
- its tight part (pieces joined by separators only) has 7-15 digits, unless it is a plain list of
  house numbers or years; or
- any stretch of it, loose words included, spells an Indian mobile number (ITU-T E.164, India's
  numbering plan: ten digits starting 6-9, optionally after 0, 91 or +91).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

Span = tuple[int, int]

_UNITS = {
    "zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9",
    "shunya": "0", "shoonya": "0", "sunya": "0", "sifar": "0", "ek": "1", "do": "2",
    "teen": "3", "tin": "3", "char": "4", "chaar": "4", "paanch": "5", "panch": "5",
    "paach": "5", "chhe": "6", "chhah": "6", "chah": "6", "chhai": "6", "che": "6",
    "saat": "7", "sat": "7", "aath": "8", "ath": "8", "nau": "9", "nao": "9",
    "शून्य": "0", "जीरो": "0", "ज़ीरो": "0", "एक": "1", "दो": "2", "तीन": "3", "चार": "4",
    "पांच": "5", "पाँच": "5", "छह": "6", "छः": "6", "छे": "6", "सात": "7", "आठ": "8",
    "नौ": "9",
}  # fmt: skip
_WHOLE = {
    "ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13", "fourteen": "14",
    "fifteen": "15", "sixteen": "16", "seventeen": "17", "eighteen": "18", "nineteen": "19",
    "das": "10", "dus": "10", "दस": "10",
}  # fmt: skip
_TENS = {
    "twenty": "2", "thirty": "3", "forty": "4", "fifty": "5", "sixty": "6", "seventy": "7",
    "eighty": "8", "ninety": "9",
}  # fmt: skip
_REPEAT = {"double": 2, "dubble": 2, "dabal": 2, "triple": 3, "tripple": 3}
# Letters that stand in for digits when written inside a number ("98765 4321O").
_LOOKALIKE = {"o": "0", "l": "1", "i": "1"}
# Words after a number that make it a quantity, not part of a phone number.
_UNIT_AFTER = frozenset(
    "st nd rd th am pm baje bje yr yrs year years saal sal varsh month months mahine mahina "
    "mahino week weeks hafte day days din hr hrs hour hours ghante ghanta min mins minute "
    "minutes sec secs rs rupees rupaye rupay inr lakh lakhs lac crore crores cr k kg gm gram "
    "grams ratti carat carats ct mukhi percent degree degrees deg times baar tarikh ft feet "
    "inch cm sq lpa gun gunas guna bindus stars log people".split()
)
_ORDINAL = frozenset({"st", "nd", "rd", "th"})

_TOKEN = re.compile(r"[\u0900-\u0963\u0970-\u097f]+|\d+|[^\W\d_]+")
# What may join the pieces of a tight number ("98765-43210", "98,76/54_32 10", "(022) 2345").
_TIGHT_GAP = re.compile(r"[\s,./_\-()+*|~'\"#]*")
_DAY = r"(?:0?[1-9]|[12]\d|3[01])"
_YEAR = r"(?:19|20)\d\d"
# Dates, clock times and formatted amounts: numbers, but never phone numbers.
_NOT_PHONE = re.compile(
    rf"(?<!\d)(?<!\d[-/.]){_DAY}\s?([-/.])\s?{_DAY}\s?\1\s?(?:{_YEAR}|\d\d)(?![-/.]?\d)"
    rf"|(?<!\d){_YEAR}\s?([-/.])\s?{_DAY}\s?\2\s?{_DAY}(?![-/.]?\d)"
    rf"|(?<![\d,]){_DAY} {_DAY} {_YEAR}(?![\d,])"
    r"|(?<!\d)\d{1,2}:\d\d(?::\d\d)?(?!\d)"
    r"|(?<![\d,])\d{1,2}(?:,\d\d)*,\d{3}(?![\d,])"
    r"|(?<![\d,])\d{1,3}(?:,\d{3})+(?![\d,])"
)
_MOBILE = re.compile(r"(?:0|91)?[6-9]\d{9}")
_YEAR_PIECE = re.compile(_YEAR)
_MAX_LOOSE_WORDS = 4
_MAX_LOOSE_DIGITS = 13


@dataclass(frozen=True, slots=True)
class _Piece:
    start: int
    end: int
    digits: str
    tight: bool
    """Joined to the previous piece by separators only (no words between)."""
    spelled: bool
    """Written as a word ("nine", "nau"), not as digits."""


def _digits_of(word: str) -> str | None:
    return _UNITS.get(word) or _WHOLE.get(word)


def _pieces(norm: str, blocked: list[Span]) -> Iterator[_Piece | None]:
    """The number pieces of ``norm`` in order; ``None`` where a chain must break."""
    tokens = [(m.start(), m.end(), m.group()) for m in _TOKEN.finditer(norm)]
    words_since = 0
    prev_end = 0
    repeat = 1
    i = 0
    while i < len(tokens):
        start, end, tok = tokens[i]
        gap = norm[prev_end:start]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        digits: str | None
        if any(s < end and start < e for s, e in blocked):
            yield None
            words_since, repeat = _MAX_LOOSE_WORDS + 1, 1
            prev_end, i = end, i + 1
            continue
        if tok.isdigit():
            following = "" if nxt is None else nxt[2]
            glued = nxt is not None and nxt[0] == end
            after = norm[end : nxt[0]] if nxt is not None else ""
            if following in _UNIT_AFTER and (glued or after.isspace()):
                if following in _ORDINAL and not glued:
                    digits = tok
                else:
                    yield None
                    words_since, repeat = _MAX_LOOSE_WORDS + 1, 1
                    prev_end, i = end, i + 1
                    continue
            else:
                digits = tok
        elif tok in _TENS:
            digits = _TENS[tok] + "0"
            if nxt is not None and nxt[2] in _UNITS and _TIGHT_GAP.fullmatch(norm[end : nxt[0]]):
                digits = _TENS[tok] + _UNITS[nxt[2]]
                end = nxt[1]
                i += 1
        elif tok in _REPEAT:
            repeat = _REPEAT[tok]
            words_since += 0 if _TIGHT_GAP.fullmatch(gap) else 1
            prev_end, i = end, i + 1
            continue
        elif tok in _LOOKALIKE and _glued_to_digits(tokens, i):
            digits = _LOOKALIKE[tok]
        else:
            digits = _digits_of(tok)
        if digits is None:
            words_since += 1
            prev_end, i = end, i + 1
            continue
        tight = words_since == 0 and _TIGHT_GAP.fullmatch(gap) is not None
        if words_since > _MAX_LOOSE_WORDS:
            yield None
        yield _Piece(start, end, digits * repeat, tight, not tok.isdigit())
        words_since, repeat = 0, 1
        prev_end, i = end, i + 1


def _glued_to_digits(tokens: list[tuple[int, int, str]], i: int) -> bool:
    before = i > 0 and tokens[i - 1][2].isdigit() and tokens[i - 1][1] == tokens[i][0]
    after = (
        i + 1 < len(tokens) and tokens[i + 1][2].isdigit() and tokens[i + 1][0] == tokens[i][1]
    )
    return before or after


def _chains(pieces: Iterator[_Piece | None]) -> Iterator[list[_Piece]]:
    chain: list[_Piece] = []
    for piece in pieces:
        if piece is None:
            if chain:
                yield chain
            chain = []
        else:
            chain.append(piece)
    if chain:
        yield chain


def _is_list(group: list[_Piece]) -> bool:
    """House numbers ("1, 4, 7, 10, 5, 9") or years ("2021, 2022 2023"), not a phone number."""
    if all(_YEAR_PIECE.fullmatch(p.digits) for p in group) and len(group) > 1:
        return True
    return len(group) >= 3 and all(
        not p.spelled and len(p.digits) <= 2 and int(p.digits) <= 12 for p in group
    )


def _tight_groups(chain: list[_Piece]) -> Iterator[list[_Piece]]:
    group: list[_Piece] = []
    for piece in chain:
        if group and not piece.tight:
            yield group
            group = []
        group.append(piece)
    if group:
        yield group


def _phone_spans(chain: list[_Piece]) -> Iterator[Span]:
    for group in _tight_groups(chain):
        digits = "".join(p.digits for p in group)
        if _MOBILE.fullmatch(digits) or (7 <= len(digits) <= 15 and not _is_list(group)):
            yield group[0].start, group[-1].end
    for first in range(len(chain)):
        digits = ""
        for last in range(first, len(chain)):
            digits += chain[last].digits
            if len(digits) > _MAX_LOOSE_DIGITS:
                break
            if _MOBILE.fullmatch(digits):
                yield chain[first].start, chain[last].end


_NUMBERISH = re.compile(
    r"\d|(?<![^\W\d_])(?:"
    + "|".join(sorted({*_UNITS, *_WHOLE, *_TENS, *_REPEAT}, key=len, reverse=True))
    + r")(?![^\W\d_])"
)


def phone_spans(norm: str) -> list[Span]:
    """Spans of ``norm`` that spell a phone number."""
    # Every number word stands for at most three digits ("triple"): a text with too few digits
    # and number words cannot spell seven digits, and most chat messages are such texts.
    found = _NUMBERISH.findall(norm)
    if sum(1 if ch.isdigit() else 3 for ch in found) < 7:
        return []
    blocked = [m.span() for m in _NOT_PHONE.finditer(norm)]
    spans = [span for chain in _chains(_pieces(norm, blocked)) for span in _phone_spans(chain)]
    # the international prefix's "+" goes with the number
    return [(start - (start > 0 and norm[start - 1] == "+"), end) for start, end in spans]
