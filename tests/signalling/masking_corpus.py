"""The labelled masking corpus (data/masking_corpus.txt), for the tests and bench/masking.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CORPUS = Path(__file__).parent / "data" / "masking_corpus.txt"


@dataclass(frozen=True, slots=True)
class Contact:
    text: str
    """A message that tries to take the conversation off the platform."""
    leak: str
    """The part of ``text`` that must not survive masking."""


@dataclass(frozen=True, slots=True)
class Corpus:
    contacts: tuple[Contact, ...]
    ordinary: tuple[str, ...]
    """Astrology chat that masking must leave untouched."""


def load(path: Path = CORPUS) -> Corpus:
    contacts: list[Contact] = []
    ordinary: list[str] = []
    section = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line in ("[contacts]", "[ordinary]"):
            section = line
        elif not line.strip() or line.startswith("#"):
            continue
        elif section == "[contacts]":
            leak, text = line.split(" || ", 1)
            contacts.append(Contact(text, leak))
        elif section == "[ordinary]":
            ordinary.append(line)
        else:
            raise ValueError(f"line outside a section: {line!r}")
    return Corpus(tuple(contacts), tuple(ordinary))
