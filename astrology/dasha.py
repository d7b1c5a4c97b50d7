"""Vimshottari dasha: the 120-year cycle of planetary periods counted from the Moon's nakshatra.

At birth the running mahadasha is that of the Moon's nakshatra lord; the part of it already
elapsed is the fraction of the nakshatra the Moon has crossed (Parashara, BPHS ch. 46). Each
mahadasha divides into nine antardashas in the same order, each lasting
``maha_years × antar_years / 120``. A year is taken as 365.25 days (the Julian year most Indian
software, Jagannatha Hora's default among them, uses).
"""

from __future__ import annotations

from dataclasses import dataclass

from astrology.zodiac import NAKSHATRA_LORDS, NAKSHATRA_SPAN

DASHA_YEARS: dict[str, int] = {
    "ketu": 7, "venus": 20, "sun": 6, "moon": 10, "mars": 7,
    "rahu": 18, "jupiter": 16, "saturn": 19, "mercury": 17,
}  # fmt: skip
CYCLE_YEARS = 120
DAYS_PER_YEAR = 365.25


@dataclass(frozen=True, slots=True)
class Period:
    """One dasha period, Julian days UT (``end`` is the next period's ``start``)."""

    lord: str
    start_jd: float
    end_jd: float
    sub: tuple[Period, ...] = ()
    """The antardashas of a mahadasha; empty for an antardasha."""


def _sequence_from(lord: str) -> list[str]:
    first = NAKSHATRA_LORDS.index(lord)
    return [NAKSHATRA_LORDS[(first + i) % 9] for i in range(9)]


def _antardashas(maha: str, start_jd: float) -> tuple[Period, ...]:
    periods = []
    at = start_jd
    for lord in _sequence_from(maha):
        days = DASHA_YEARS[maha] * DASHA_YEARS[lord] / CYCLE_YEARS * DAYS_PER_YEAR
        periods.append(Period(lord, at, at + days))
        at += days
    return tuple(periods)


def vimshottari(moon_longitude: float, birth_jd: float) -> tuple[Period, ...]:
    """The nine mahadashas of the cycle running at birth (the first one began before birth)."""
    lon = moon_longitude % 360.0
    index = min(int(lon // NAKSHATRA_SPAN), 26)
    elapsed = (lon - index * NAKSHATRA_SPAN) / NAKSHATRA_SPAN
    first = NAKSHATRA_LORDS[index % 9]
    at = birth_jd - elapsed * DASHA_YEARS[first] * DAYS_PER_YEAR
    periods = []
    for lord in _sequence_from(first):
        days = DASHA_YEARS[lord] * DAYS_PER_YEAR
        periods.append(Period(lord, at, at + days, _antardashas(lord, at)))
        at += days
    return tuple(periods)
