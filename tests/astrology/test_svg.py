"""North and South Indian chart pictures: well-formed SVG with every graha in its place."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest

from astrology.chart import BirthMoment, compute_chart
from astrology.svg import render

NS = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize("style", ["north", "south"])
def test_chart_pictures_name_every_graha_and_the_lagna(style: str) -> None:
    chart = compute_chart(BirthMoment(datetime(1990, 5, 17, 4, 30, tzinfo=UTC), 19.076, 72.878))
    root = ET.fromstring(render(chart, style))
    texts = [t.text or "" for t in root.iter(f"{NS}text")]
    for abbrev in ("Su", "Mo", "Ma", "Me", "Ju", "Ve", "Sa", "Ra", "Ke"):
        assert any(t.startswith(abbrev) for t in texts), abbrev
    assert "Asc" in texts


def test_north_chart_numbers_houses_from_the_lagna_sign() -> None:
    chart = compute_chart(BirthMoment(datetime(1990, 5, 17, 4, 30, tzinfo=UTC), 19.076, 72.878))
    root = ET.fromstring(render(chart, "north"))
    numbers = [t.text for t in root.iter(f"{NS}text") if t.get("class") == "n"]
    assert numbers == [str(r) for r in chart.houses]


def test_unknown_style_is_refused() -> None:
    chart = compute_chart(BirthMoment(datetime(1990, 5, 17, 4, 30, tzinfo=UTC), 19.076, 72.878))
    with pytest.raises(ValueError):
        render(chart, "east")
