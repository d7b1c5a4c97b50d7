"""Birth details: checked on the way in (400 with stable codes), pinned to UTC on the way out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from astrology.chart import BirthMoment
from astrology.localtime import LocalTimeError, ResolvedTime, to_utc
from astrology.places import Place, PlaceError, from_coordinates, gazetteer
from birth.errors import bad_input

#: Births the bundled ephemeris covers (DE421 spans 1899-07-29 … 2053-10-09).
FIRST_DATE = date(1900, 1, 1)
LAST_DATE = date(2050, 12, 31)
_UNKNOWN_TIME_NOON = time(12, 0)


@dataclass(frozen=True, slots=True)
class BirthDetails:
    """What the caller told us; the whole of it is sealed at rest."""

    name: str
    gender: str
    date: date
    time: time | None
    """None: the caller does not know the time of birth."""
    place: Place

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "gender": self.gender,
            "date": self.date.isoformat(),
            "time": self.time.isoformat() if self.time is not None else None,
            "place": self.place.as_dict(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BirthDetails:
        p = data["place"]
        return cls(
            name=data["name"],
            gender=data["gender"],
            date=date.fromisoformat(data["date"]),
            time=time.fromisoformat(data["time"]) if data["time"] else None,
            place=Place(p["id"], p["name"], p["latitude"], p["longitude"], p["time_zone"]),
        )

    def resolve(self) -> ResolvedTime:
        """The UTC instant of birth (local noon when the time is unknown)."""
        local = datetime.combine(self.date, self.time or _UNKNOWN_TIME_NOON)
        try:
            return to_utc(local, self.place.time_zone, self.place.longitude)
        except LocalTimeError as error:
            raise bad_input(error.code.upper(), str(error)) from None

    def moment(self) -> BirthMoment:
        resolved = self.resolve()
        window = None
        if self.time is None:  # the civil day around local noon (a clock change aside)
            half_day = timedelta(hours=12)
            window = (resolved.utc - half_day, resolved.utc + half_day - timedelta(minutes=1))
        return BirthMoment(
            resolved.utc, self.place.latitude, self.place.longitude, self.time is not None, window
        )


def parse_date(raw: str, today: date) -> date:
    try:
        parsed = date.fromisoformat(raw)
    except ValueError:
        raise bad_input("INVALID_DATE", "date must be a real calendar date, YYYY-MM-DD") from None
    if not FIRST_DATE <= parsed <= min(LAST_DATE, today):
        raise bad_input(
            "DATE_OUT_OF_RANGE",
            f"date must be between {FIRST_DATE.isoformat()} and today",
            first=FIRST_DATE.isoformat(),
        )
    return parsed


def parse_time(raw: str | None) -> time | None:
    if raw is None or raw == "":
        return None
    try:
        parsed = time.fromisoformat(raw)
    except ValueError:
        raise bad_input("INVALID_TIME", "time must be HH:MM or HH:MM:SS, 24-hour") from None
    if parsed.tzinfo is not None:
        raise bad_input("INVALID_TIME", "give the local clock time, without a UTC offset")
    return parsed.replace(microsecond=0)


def parse_place(
    place_id: int | None, latitude: float | None, longitude: float | None, name: str | None
) -> Place:
    try:
        if place_id is not None:
            return gazetteer().get(place_id)
        if latitude is None or longitude is None:
            raise bad_input("UNKNOWN_PLACE", "give place_id, or latitude and longitude")
        return from_coordinates(latitude, longitude, name)
    except PlaceError as error:
        raise bad_input(error.code.upper(), str(error)) from None


def build_details(data: dict[str, Any], now: datetime) -> BirthDetails:
    """Check the caller's fields; the instant must exist at that place (no clock-change gap)."""
    details = BirthDetails(
        name=data["name"].strip(),
        gender=data["gender"],
        date=parse_date(data["date"], now.astimezone(UTC).date()),
        time=parse_time(data.get("time")),
        place=parse_place(
            data.get("place_id"), data.get("latitude"), data.get("longitude"),
            data.get("place_name"),
        ),
    )  # fmt: skip
    resolved = details.resolve()  # also for an unknown time: local noon must exist
    if details.time is not None and resolved.utc > now:
        raise bad_input("DATE_OUT_OF_RANGE", "the birth is in the future")
    return details
