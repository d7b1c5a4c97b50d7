"""The chart as JSON for the API (plain values only; dates ISO 8601 in UTC)."""

from __future__ import annotations

from typing import Any

from astrology.chart import Chart, jd_to_datetime
from astrology.dasha import Period


def _period(period: Period) -> dict[str, Any]:
    out: dict[str, Any] = {
        "lord": period.lord,
        "start": jd_to_datetime(period.start_jd).isoformat(timespec="minutes"),
        "end": jd_to_datetime(period.end_jd).isoformat(timespec="minutes"),
    }
    if period.sub:
        out["antardashas"] = [_period(p) for p in period.sub]
    return out


def chart_to_json(chart: Chart) -> dict[str, Any]:
    return {
        "system": {
            "zodiac": "sidereal",
            "ayanamsa": "lahiri",
            "houses": "whole_sign",
            "nodes": "mean",
            "ephemeris": "JPL DE421",
        },
        "instant_utc": chart.moment.instant.isoformat(),
        "time_known": chart.moment.time_known,
        "ayanamsa": round(chart.ayanamsa, 6),
        "ascendant": chart.ascendant.as_dict(),
        "grahas": [
            {
                "name": g.name,
                **g.placement.as_dict(),
                "speed": round(g.speed, 6),
                "retrograde": g.retrograde,
                "house": g.house,
            }
            for g in chart.grahas
        ],
        "houses": [{"house": i + 1, "rashi": r} for i, r in enumerate(chart.houses)],
        "dashas": [_period(p) for p in chart.dashas],
        "unreliable": list(chart.unreliable),
    }
