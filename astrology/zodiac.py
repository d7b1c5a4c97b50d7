"""Rashis, nakshatras and padas: the fixed divisions of the sidereal zodiac."""

from __future__ import annotations

from dataclasses import dataclass

RASHIS: tuple[str, ...] = (
    "Mesha", "Vrishabha", "Mithuna", "Karka", "Simha", "Kanya",
    "Tula", "Vrishchika", "Dhanu", "Makara", "Kumbha", "Meena",
)  # fmt: skip
RASHIS_EN: tuple[str, ...] = (
    "Aries", "Taurus", "Gemini", "Cancer", "Leo", "Virgo",
    "Libra", "Scorpio", "Sagittarius", "Capricorn", "Aquarius", "Pisces",
)  # fmt: skip
NAKSHATRAS: tuple[str, ...] = (
    "Ashwini", "Bharani", "Krittika", "Rohini", "Mrigashira", "Ardra", "Punarvasu",
    "Pushya", "Ashlesha", "Magha", "Purva Phalguni", "Uttara Phalguni", "Hasta",
    "Chitra", "Swati", "Vishakha", "Anuradha", "Jyeshtha", "Mula", "Purva Ashadha",
    "Uttara Ashadha", "Shravana", "Dhanishta", "Shatabhisha", "Purva Bhadrapada",
    "Uttara Bhadrapada", "Revati",
)  # fmt: skip
#: Vimshottari lords of the nakshatras, repeating from Ashwini (Ketu) every nine.
NAKSHATRA_LORDS: tuple[str, ...] = (
    "ketu", "venus", "sun", "moon", "mars", "rahu", "jupiter", "saturn", "mercury",
)  # fmt: skip

RASHI_SPAN = 30.0
NAKSHATRA_SPAN = 360.0 / 27.0
PADA_SPAN = NAKSHATRA_SPAN / 4.0


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a sidereal longitude falls."""

    longitude: float
    """Sidereal longitude, degrees in [0, 360)."""
    rashi: int
    """Sign, 1 (Mesha) … 12 (Meena)."""
    degree_in_rashi: float
    """Degrees past the start of the sign."""
    nakshatra: int
    """Lunar mansion, 1 (Ashwini) … 27 (Revati)."""
    pada: int
    """Quarter of the nakshatra, 1 … 4."""

    @property
    def nakshatra_lord(self) -> str:
        return NAKSHATRA_LORDS[(self.nakshatra - 1) % 9]

    def as_dict(self) -> dict[str, object]:
        return {
            "longitude": round(self.longitude, 6),
            "rashi": self.rashi,
            "rashi_name": RASHIS[self.rashi - 1],
            "rashi_name_en": RASHIS_EN[self.rashi - 1],
            "degree_in_rashi": round(self.degree_in_rashi, 6),
            "nakshatra": self.nakshatra,
            "nakshatra_name": NAKSHATRAS[self.nakshatra - 1],
            "nakshatra_lord": self.nakshatra_lord,
            "pada": self.pada,
        }


def place(longitude: float) -> Placement:
    """Rashi, nakshatra and pada of a sidereal longitude."""
    lon = longitude % 360.0
    rashi = int(lon // RASHI_SPAN)
    nakshatra = min(int(lon // NAKSHATRA_SPAN), 26)
    pada = min(int((lon - nakshatra * NAKSHATRA_SPAN) // PADA_SPAN), 3)
    return Placement(
        longitude=lon,
        rashi=rashi + 1,
        degree_in_rashi=lon - rashi * RASHI_SPAN,
        nakshatra=nakshatra + 1,
        pada=pada + 1,
    )


def distance_to_boundary(longitude: float) -> float:
    """Degrees from ``longitude`` to the nearest pada (hence nakshatra or rashi) boundary.

    Every rashi and nakshatra boundary is also a pada boundary (30° = 9 padas of 3°20′).
    """
    offset = (longitude % 360.0) % PADA_SPAN
    return min(offset, PADA_SPAN - offset)
