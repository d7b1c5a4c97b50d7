"""Cost of contact masking per chat message, on the labelled corpus of the tests.

Masks every message of tests/signalling/data/masking_corpus.txt with all kinds enabled, many
times over, and prints per set (ordinary chat, contact attempts, both) the microseconds per
message (best of ``--repeat`` passes, so other load on the machine inflates it least) with the
share of messages masked.

    .venv/bin/python -m bench.masking --repeat 7 --passes 20
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from signalling.masking import KINDS, mask
from tests.signalling.masking_corpus import load


def _us_per_message(texts: Sequence[str], passes: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(passes):
            for text in texts:
                mask(text, KINDS)
        best = min(best, time.perf_counter() - started)
    return best / (passes * len(texts)) * 1e6


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="timed runs; the best counts")
    parser.add_argument("--passes", type=int, default=20, help="passes over the set per run")
    args = parser.parse_args(argv)
    corpus = load()
    contacts = [c.text for c in corpus.contacts]
    sets = {
        "ordinary": list(corpus.ordinary),
        "contacts": contacts,
        "all": [*corpus.ordinary, *contacts],
    }
    print("| set | messages | masked | us/message |")
    print("|---|---:|---:|---:|")
    for name, texts in sets.items():
        masked = sum(mask(text, KINDS).masked for text in texts)
        cost = _us_per_message(texts, args.passes, args.repeat)
        print(f"| {name} | {len(texts)} | {masked} | {cost:.1f} |")


if __name__ == "__main__":
    main()
