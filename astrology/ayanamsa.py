"""The Lahiri (Chitrapaksha) ayanamsa exactly as the Swiss Ephemeris defines ``SE_SIDM_LAHIRI``.

swisseph (sweph.h, table ``ayanamsa[]``, entry 1) fixes the ayanamsa at t0 = JD 2435553.5 TT
(1956-09-22, the Indian Calendar Reform Committee's epoch) to 23.250182778° − 0.004658035°,
a value defined with the IAU 1976 precession. ``swi_get_ayanamsa_ex`` then:

1. precesses the vernal point of the date back to t0 and takes its longitude on the ecliptic of
   t0 (the "traditional" method; precession is swisseph's default Vondrák 2011, which agrees with
   the IAU 2006 model Skyfield uses to well under 0.01″ over 1900–2050);
2. subtracts that longitude from the value at t0;
3. subtracts ``get_aya_correction``: the longitude, on the ecliptic of t0, that the vernal point of
   t0 gains when taken to J2000 with the default model and back with IAU 1976 — a constant that
   keeps sidereal positions independent of the precession model.

The result is the *mean* ayanamsa (no nutation); :func:`astrology.chart.lahiri_true` adds the
nutation in longitude, as ``swe_get_ayanamsa_ex`` does without ``SEFLG_NONUT``.
"""

from __future__ import annotations

import math

import numpy as np
from skyfield.functions import rot_y, rot_z
from skyfield.nutationlib import mean_obliquity
from skyfield.precessionlib import compute_precession

LAHIRI_T0_JD_TT = 2435553.5
LAHIRI_AYANAMSA_T0 = 23.250182778 - 0.004658035
_ARCSEC = math.pi / (180.0 * 3600.0)
_J2000 = 2451545.0


def _ecliptic_longitude(equatorial: np.ndarray, jd_tt: float) -> float:
    """Longitude (degrees) on the mean ecliptic of ``jd_tt`` of a mean-equatorial vector."""
    eps = mean_obliquity(jd_tt) * _ARCSEC
    x, y, z = equatorial
    return math.degrees(math.atan2(y * math.cos(eps) + z * math.sin(eps), x))


def _iau1976_precession(jd_tt: float) -> np.ndarray:
    """J2000 → mean equator and equinox of date, Lieske et al. 1977 (A&A 58, 1)."""
    t = (jd_tt - _J2000) / 36525.0
    zeta = (2306.2181 + (0.30188 + 0.017998 * t) * t) * t * _ARCSEC
    z = (2306.2181 + (1.09468 + 0.018203 * t) * t) * t * _ARCSEC
    theta = (2004.3109 - (0.42665 + 0.041833 * t) * t) * t * _ARCSEC
    # Skyfield's rot_* rotate vectors (active), so the frame rotation R3(-z)R2(θ)R3(-ζ) reads:
    matrix: np.ndarray = rot_z(z) @ rot_y(-theta) @ rot_z(zeta)
    return matrix


def _model_correction() -> float:
    """swisseph's ``get_aya_correction`` for Lahiri: IAU 1976 versus the modern model at t0."""
    vernal_t0 = np.array([1.0, 0.0, 0.0])
    at_j2000 = compute_precession(LAHIRI_T0_JD_TT).T @ vernal_t0
    back = _iau1976_precession(LAHIRI_T0_JD_TT) @ at_j2000
    corr = _ecliptic_longitude(back, LAHIRI_T0_JD_TT)
    return corr


_CORRECTION = _model_correction()
_PRECESSION_T0 = compute_precession(LAHIRI_T0_JD_TT)


def lahiri_mean(jd_tt: float) -> float:
    """Mean Lahiri ayanamsa (degrees) at ``jd_tt``, as ``swe_get_ayanamsa_ex(…, SEFLG_NONUT)``."""
    vernal_of_date = np.array([1.0, 0.0, 0.0])
    at_j2000 = compute_precession(jd_tt).T @ vernal_of_date
    at_t0 = _PRECESSION_T0 @ at_j2000
    longitude_t0 = _ecliptic_longitude(at_t0, LAHIRI_T0_JD_TT)
    return (LAHIRI_AYANAMSA_T0 - longitude_t0 - _CORRECTION) % 360.0
