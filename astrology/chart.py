"""The kundli: sidereal (Lahiri) positions, lagna, whole-sign houses and Vimshottari dasha."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from astrology.ayanamsa import lahiri_mean
from astrology.dasha import Period, vimshottari
from astrology.ephemeris import Ephemeris, TropicalSky, default_ephemeris
from astrology.zodiac import Placement, place

#: The grahas in the traditional order (Sun … Saturn, then the nodes).
GRAHAS: tuple[str, ...] = (
    "sun", "moon", "mars", "mercury", "jupiter", "venus", "saturn", "rahu", "ketu",
)  # fmt: skip
_UNIX_EPOCH_JD = 2440587.5


@dataclass(frozen=True, slots=True)
class BirthMoment:
    """A birth as the chart needs it: an instant and a place on the Earth."""

    instant: datetime
    """Birth instant, timezone-aware (local noon when the time is unknown)."""
    latitude: float
    """Geographic latitude, degrees north."""
    longitude: float
    """Geographic longitude, degrees east."""
    time_known: bool = True
    """False when the caller does not know the time of birth."""
    day_window: tuple[datetime, datetime] | None = None
    """For an unknown time: the birth day's first and last instant, to bound the Moon."""


@dataclass(frozen=True, slots=True)
class Graha:
    """One body of the chart."""

    name: str
    placement: Placement
    speed: float
    """Daily motion in sidereal longitude, degrees per day."""
    retrograde: bool
    house: int
    """Whole-sign house counted from the lagna's sign, 1 … 12."""


@dataclass(frozen=True, slots=True)
class Chart:
    """Everything the astrologer reads; :meth:`as_dict` is the API's JSON."""

    moment: BirthMoment
    jd_ut: float
    ayanamsa: float
    """True Lahiri ayanamsa at birth (mean + nutation in longitude), degrees."""
    ascendant: Placement
    grahas: tuple[Graha, ...]
    houses: tuple[int, ...]
    """Rashi (1 … 12) of houses 1 … 12."""
    dashas: tuple[Period, ...]
    unreliable: tuple[str, ...]
    """Parts an unknown birth time makes unreliable (empty when the time is known)."""

    def graha(self, name: str) -> Graha:
        return next(g for g in self.grahas if g.name == name)


def lahiri_true(sky: TropicalSky) -> float:
    """The ayanamsa swisseph subtracts from apparent longitudes: mean Lahiri + nutation.

    Subtracting it leaves longitudes on the *mean* equinox, which is what ``swe_calc_ut`` with
    ``SEFLG_SIDEREAL`` and ``swe_houses_ex`` return (checked against pyswisseph in the tests).
    """
    return lahiri_mean(sky.jd_tt) + sky.nutation_longitude


def ascendant_tropical(armc: float, latitude: float, obliquity: float) -> float:
    """Ecliptic longitude rising in the east (Meeus, *Astronomical Algorithms* ch. 14)."""
    ramc, eps, phi = math.radians(armc), math.radians(obliquity), math.radians(latitude)
    y = math.cos(ramc)
    x = -(math.sin(ramc) * math.cos(eps) + math.tan(phi) * math.sin(eps))
    return math.degrees(math.atan2(y, x)) % 360.0


def julian_day(instant: datetime) -> float:
    """Julian day (UT) of an aware datetime; UTC is used as UT1 (|UT1 − UTC| < 0.9 s)."""
    return _UNIX_EPOCH_JD + instant.astimezone(UTC).timestamp() / 86400.0


def jd_to_datetime(jd: float) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=jd - _UNIX_EPOCH_JD)


def _grahas(sky: TropicalSky, ayanamsa: float, lagna_rashi: int) -> tuple[Graha, ...]:
    grahas = []
    for name in GRAHAS:
        if name in ("rahu", "ketu"):
            lon = sky.mean_node - ayanamsa + (180.0 if name == "ketu" else 0.0)
            speed, retro = -0.05295, True  # the mean node always moves backwards
        else:
            lon, speed = sky.longitudes[name] - ayanamsa, sky.speeds[name]
            retro = speed < 0
        where = place(lon)
        house = (where.rashi - lagna_rashi) % 12 + 1
        grahas.append(Graha(name, where, speed, retro, house))
    return tuple(grahas)


def compute_chart(moment: BirthMoment, ephemeris: Ephemeris | None = None) -> Chart:
    """The chart of ``moment``; raises :class:`~astrology.ephemeris.EphemerisRangeError`."""
    if not -90.0 <= moment.latitude <= 90.0 or not -180.0 <= moment.longitude <= 180.0:
        raise ValueError("coordinates out of range")
    eph = ephemeris or default_ephemeris()
    jd = julian_day(moment.instant)
    sky = eph.sky(jd)
    ayanamsa = lahiri_true(sky)
    armc = (sky.gast_degrees + moment.longitude) % 360.0
    lagna = place(ascendant_tropical(armc, moment.latitude, sky.true_obliquity) - ayanamsa)
    grahas = _grahas(sky, ayanamsa, lagna.rashi)
    moon = next(g for g in grahas if g.name == "moon")
    return Chart(
        moment=moment,
        jd_ut=jd,
        ayanamsa=ayanamsa,
        ascendant=lagna,
        grahas=grahas,
        houses=tuple((lagna.rashi + i - 1) % 12 + 1 for i in range(12)),
        dashas=vimshottari(moon.placement.longitude, jd),
        unreliable=_unreliable(moment, eph),
    )


def _unreliable(moment: BirthMoment, eph: Ephemeris) -> tuple[str, ...]:
    """What an unknown birth time leaves uncertain: compare the Moon at both ends of the day."""
    if moment.time_known:
        return ()
    parts = ["ascendant", "houses", "dasha_dates"]
    if moment.day_window is not None:
        first, last = (eph.sky(julian_day(t)) for t in moment.day_window)
        at_first = place(first.longitudes["moon"] - lahiri_true(first))
        at_last = place(last.longitudes["moon"] - lahiri_true(last))
        if at_first.rashi != at_last.rashi:
            parts.append("moon_rashi")
        if at_first.nakshatra != at_last.nakshatra:
            parts += ["moon_nakshatra", "dasha_sequence"]
        elif at_first.pada != at_last.pada:
            parts.append("moon_pada")
    return tuple(parts)
