"""Tropical apparent positions from JPL DE421, nothing fetched at run time.

The conventions follow the Swiss Ephemeris (Astrodienst), the reference of Indian astrology
software, so that our charts agree with it to arcseconds:

- geocentric *apparent* positions: light time, annual aberration (first order in v/c; the
  second-order term is under 0.002″), referred to the true ecliptic and equinox of date;
  gravitational light deflection (under 1″ beyond 1° from the Sun) is left out for speed;
- nutation IAU 2000B (swisseph's default ``SEMOD_NUT_IAU_2000B``), precession IAU 2006 (within
  0.01″ of swisseph's default Vondrák 2011 over 1900–2050), also used for the sidereal time;
- the input instant is UT1; TT = UT1 + ΔT from Skyfield's bundled IERS and Stephenson–Morrison–
  Hohenkerk 2016 tables (swisseph's default ``SEMOD_DELTAT_STEPHENSON_ETC_2016``).

DE421 (shipped by the ``skyfield-data`` wheel) covers 1899-07-29 … 2053-10-09; its Chebyshev
segments are read with ``jplephem`` directly, and Skyfield supplies time scales and the
precession–nutation matrix. Positions of a body at the instant and one hour later are computed
in one vectorised pass; their difference gives the daily motion (retrograde flags).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from importlib import resources

import numpy as np
from jplephem.spk import SPK
from skyfield.functions import rot_x
from skyfield.nutationlib import iau2000b_radians
from skyfield.timelib import Timescale

#: Julian days (UT) the bundled ephemeris answers for: DE421 spans 1899-07-29 … 2053-10-09.
FIRST_JD = 2414864.5  # 1899-07-30
LAST_JD = 2471177.5  # 2053-10-08

#: Step of the finite difference that gives daily motion, in days.
SPEED_STEP_DAYS = 1.0 / 24.0

_C_KM_PER_DAY = 299792.458 * 86400.0
_LIGHT_TIME_ITERATIONS = 3

#: NAIF codes (centre, target) of the barycentric segments of each graha in DE421.
_BARYCENTRIC: dict[str, int] = {
    "sun": 10,
    "mercury": 1,
    "venus": 2,
    "mars": 4,
    "jupiter": 5,
    "saturn": 6,
}
_EMB, _EARTH, _MOON = 3, 399, 301


class EphemerisRangeError(ValueError):
    """The instant lies outside the span the bundled ephemeris covers."""


@dataclass(frozen=True, slots=True)
class TropicalSky:
    """Everything of the sky at one instant that a chart needs, tropical and of date."""

    jd_ut: float
    """Julian day of the instant, UT1."""
    jd_tt: float
    """The same instant in Terrestrial Time."""
    longitudes: dict[str, float]
    """Apparent ecliptic longitude of date of each body, degrees in [0, 360)."""
    speeds: dict[str, float]
    """Daily motion in longitude, degrees per day (negative: retrograde)."""
    mean_node: float
    """Longitude of the Moon's mean ascending node with nutation, degrees."""
    true_obliquity: float
    """Obliquity of the ecliptic including nutation, degrees."""
    gast_degrees: float
    """Greenwich apparent sidereal time, degrees."""
    nutation_longitude: float
    """Nutation in longitude Δψ (IAU 2000B), degrees."""


class Ephemeris:
    """DE421 opened once (memory-mapped, read only); computes a :class:`TropicalSky`."""

    def __init__(self) -> None:
        data = resources.files("skyfield_data") / "data" / "de421.bsp"
        with resources.as_file(data) as path:
            self._spk = SPK.open(str(path))
        self._ts: Timescale = _builtin_timescale()

    def _position(self, center: int, target: int, tdb: np.ndarray) -> np.ndarray:
        position: np.ndarray = self._spk[center, target].compute(tdb)
        return position

    def _earth(self, tdb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Barycentric position (km) and velocity (km/day) of the Earth."""
        emb_p, emb_v = self._spk[0, _EMB].compute_and_differentiate(tdb)
        geo_p, geo_v = self._spk[_EMB, _EARTH].compute_and_differentiate(tdb)
        return emb_p + geo_p, emb_v + geo_v

    def _astrometric(self, name: str, tdb: np.ndarray, earth: np.ndarray) -> np.ndarray:
        """Geocentric vector to where the body was when the light left it (km)."""
        distance = 0.0
        vector = np.zeros_like(earth)
        for _ in range(_LIGHT_TIME_ITERATIONS):
            emitted = tdb - distance / _C_KM_PER_DAY
            if name == "moon":  # barycentric: the EMB moves ~40 km in the 1.3 s of light time
                body = self._position(0, _EMB, emitted) + self._position(_EMB, _MOON, emitted)
            else:
                body = self._position(0, _BARYCENTRIC[name], emitted)
            vector = body - earth
            distance = np.sqrt((vector * vector).sum(axis=0))
        return vector

    def sky(self, jd_ut: float) -> TropicalSky:
        """Positions at ``jd_ut`` (UT1) and one step later, for the daily motion."""
        if not FIRST_JD <= jd_ut <= LAST_JD:
            raise EphemerisRangeError(jd_ut)
        t = self._ts.ut1_jd(np.array([jd_ut, jd_ut + SPEED_STEP_DAYS]))
        t._nutation_angles_radians = iau2000b_radians(t)
        d_psi, d_eps = t._nutation_angles_radians
        true_obliquity = t._mean_obliquity_radians + d_eps
        tdb = t.tdb
        earth, earth_velocity = self._earth(tdb)
        # ICRS → true equator of date (t.M, with frame bias) → true ecliptic of date.
        to_ecliptic = [rot_x(-true_obliquity[i]) @ t.M[:, :, i] for i in range(2)]
        longitudes: dict[str, float] = {}
        speeds: dict[str, float] = {}
        for name in ("sun", "moon", "mars", "mercury", "jupiter", "venus", "saturn"):
            vector = self._astrometric(name, tdb, earth)
            unit = vector / np.sqrt((vector * vector).sum(axis=0))
            apparent = unit + earth_velocity / _C_KM_PER_DAY  # annual aberration
            lon = [_longitude(to_ecliptic[i] @ apparent[:, i]) for i in range(2)]
            longitudes[name] = lon[0]
            speeds[name] = _wrap180(lon[1] - lon[0]) / SPEED_STEP_DAYS
        node = _mean_node_degrees(float(t.tt[0])) + math.degrees(float(d_psi[0]))
        return TropicalSky(
            jd_ut=jd_ut,
            jd_tt=float(t.tt[0]),
            longitudes=longitudes,
            speeds=speeds,
            mean_node=node % 360.0,
            true_obliquity=math.degrees(float(true_obliquity[0])),
            gast_degrees=float(t.gast[0]) * 15.0,
            nutation_longitude=math.degrees(float(d_psi[0])),
        )


@functools.cache
def default_ephemeris() -> Ephemeris:
    """The process's one ephemeris: the kernel is memory-mapped once and only read."""
    return Ephemeris()


def _builtin_timescale() -> Timescale:
    # builtin=True reads the IERS tables shipped inside Skyfield: no download, no files written.
    from skyfield.api import load

    ts: Timescale = load.timescale(builtin=True)
    return ts


def _longitude(vector: np.ndarray) -> float:
    return math.degrees(math.atan2(float(vector[1]), float(vector[0]))) % 360.0


def _mean_node_degrees(jd_tt: float) -> float:
    """Mean lunar ascending node, mean equinox of date (Chapront et al., in Meeus ch. 47).

    swisseph's Moshier mean node agrees with it to a fraction of an arcsecond in 1900–2050.
    """
    t = (jd_tt - 2451545.0) / 36525.0
    return 125.0445479 - 1934.1362891 * t + 0.0020754 * t * t + t**3 / 467441.0 - t**4 / 60616000.0


def _wrap180(degrees: float) -> float:
    return (degrees + 180.0) % 360.0 - 180.0
