"""Civil time of birth → UTC, with the zone's history (IANA tz database through ``zoneinfo``).

``zoneinfo`` knows India's +6:30 war time (1942–45), Nepal's +5:45 (since 1986), Pakistan's and
Bangladesh's changes. Before a region adopted a standard time, tzdata gives the local mean time
of *one* city of the zone (Asia/Kolkata before 1906 is Madras time, +5:21:10), which is wrong for
a birth in Mumbai. Astrologers use the birthplace's own local mean time there, so whenever the
zone's offset is not a whole quarter hour (no standard time ever was) we replace it with the
mean solar time of the birth longitude: 4 minutes per degree east of Greenwich.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.errors import CodedError

_QUARTER_HOUR = 900


class LocalTimeError(CodedError, ValueError):
    """A birth time that cannot be placed on the time line; ``code`` is the API's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code)


@dataclass(frozen=True, slots=True)
class ResolvedTime:
    """A civil birth time pinned to the time line."""

    utc: datetime
    """The instant, aware, in UTC."""
    offset_seconds: int
    """Local time minus UTC at that instant."""
    local_mean_time: bool
    """True when the place kept no standard time yet and its mean solar time was used."""


def local_mean_offset(longitude: float) -> int:
    """Seconds of mean solar time east of Greenwich (240 s per degree)."""
    return round(longitude * 240.0)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise LocalTimeError("unknown_time_zone", f"unknown time zone {name!r}") from error


def to_utc(local: datetime, tz_name: str, longitude: float) -> ResolvedTime:
    """UTC instant of the naive civil time ``local`` at a place in zone ``tz_name``.

    Raises ``LocalTimeError("time_does_not_exist")`` for a time a clock change skipped; a time
    that happened twice (clocks set back) is taken at its first occurrence.
    """
    tz = zone(tz_name)
    aware = local.replace(tzinfo=tz, fold=0)
    offset = aware.utcoffset()
    if offset is None:  # a ZoneInfo always answers; this keeps the type checker honest
        raise LocalTimeError("unknown_time_zone", f"no UTC offset in {tz_name!r}")
    seconds = int(offset.total_seconds())
    if seconds % _QUARTER_HOUR:
        seconds = local_mean_offset(longitude)
        utc = (local - timedelta(seconds=seconds)).replace(tzinfo=UTC)
        return ResolvedTime(utc, seconds, local_mean_time=True)
    utc = aware.astimezone(UTC)
    if utc.astimezone(tz).replace(tzinfo=None) != local:
        raise LocalTimeError(
            "time_does_not_exist", "the clocks skipped this time at that place (a time change)"
        )
    return ResolvedTime(utc, seconds, local_mean_time=False)
