"""North and South Indian rashi charts as standalone SVG (no user text is written into them)."""

from __future__ import annotations

from astrology.chart import Chart
from astrology.zodiac import RASHIS_EN

SIZE = 400
_ABBREV = {
    "sun": "Su", "moon": "Mo", "mars": "Ma", "mercury": "Me", "jupiter": "Ju",
    "venus": "Ve", "saturn": "Sa", "rahu": "Ra", "ketu": "Ke",
}  # fmt: skip
#: North Indian style: where each house (1 … 12, counter-clockwise from the top diamond) has
#: its planets, and its sign number (near the house's corner toward the chart's centre).
_NORTH_CENTRES = (
    (200, 90), (100, 32), (36, 100), (100, 190), (36, 300), (100, 368),
    (200, 290), (300, 368), (364, 300), (300, 190), (364, 100), (300, 32),
)  # fmt: skip
_NORTH_NUMBERS = (
    (200, 170), (100, 80), (80, 104), (170, 204), (80, 304), (100, 332),
    (200, 240), (300, 332), (320, 304), (230, 204), (320, 104), (300, 80),
)  # fmt: skip
#: South Indian style: the fixed cell (column, row) of each rashi, Mesha second in the top row.
_SOUTH_CELLS = (
    (1, 0), (2, 0), (3, 0), (3, 1), (3, 2), (3, 3),
    (2, 3), (1, 3), (0, 3), (0, 2), (0, 1), (0, 0),
)  # fmt: skip
STYLES = ("north", "south")


def _labels(chart: Chart) -> dict[int, list[str]]:
    """Planet labels per rashi, e.g. ``Ma℞ 12°``."""
    by_rashi: dict[int, list[str]] = {r: [] for r in range(1, 13)}
    for graha in chart.grahas:
        mark = "℞" if graha.retrograde and graha.name not in ("rahu", "ketu") else ""
        degrees = int(graha.placement.degree_in_rashi)
        by_rashi[graha.placement.rashi].append(f"{_ABBREV[graha.name]}{mark} {degrees}°")
    return by_rashi


def _text(x: float, y: float, text: str, size: int = 13, cls: str = "p") -> str:
    return (
        f'<text x="{x:.0f}" y="{y:.0f}" font-size="{size}" text-anchor="middle" '
        f'class="{cls}">{text}</text>'
    )


def _stack(x: float, y: float, lines: list[str]) -> list[str]:
    top = y - (len(lines) - 1) * 7.5
    return [_text(x, top + i * 15, line) for i, line in enumerate(lines)]


def _frame(body: list[str], title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {SIZE} {SIZE}" '
        f'width="{SIZE}" height="{SIZE}" role="img" aria-label="{title}" '
        'font-family="sans-serif">'
        f"<title>{title}</title>"
        '<rect x="1" y="1" width="398" height="398" fill="#fffdf5" stroke="#7a3e00" '
        'stroke-width="2"/>' + "".join(body) + "</svg>"
    )


def north_indian(chart: Chart) -> str:
    """Houses fixed (lagna in the top diamond), rashi numbers written in each house."""
    lines = [
        '<g stroke="#7a3e00" stroke-width="1.5" fill="none">',
        '<line x1="0" y1="0" x2="400" y2="400"/><line x1="400" y1="0" x2="0" y2="400"/>',
        '<polygon points="200,0 400,200 200,400 0,200"/></g>',
    ]
    labels = _labels(chart)
    for house, ((x, y), (nx, ny)) in enumerate(
        zip(_NORTH_CENTRES, _NORTH_NUMBERS, strict=True), start=1
    ):
        rashi = chart.houses[house - 1]
        lines.append(_text(nx, ny, str(rashi), 11, "n"))
        lines += _stack(x, y, (["Asc"] if house == 1 else []) + labels[rashi])
    return _frame(lines, "North Indian rashi chart")


def south_indian(chart: Chart) -> str:
    """Rashis fixed (Mesha second in the top row), the lagna's cell crossed by a diagonal."""
    cell = SIZE / 4
    lines = ['<g stroke="#7a3e00" stroke-width="1.5" fill="none">']
    for rashi, (col, row) in enumerate(_SOUTH_CELLS, start=1):
        lines.append(f'<rect x="{col * cell}" y="{row * cell}" width="{cell}" height="{cell}"/>')
        if rashi == chart.ascendant.rashi:
            x, y = col * cell, row * cell
            lines.append(f'<line x1="{x}" y1="{y + 18}" x2="{x + 18}" y2="{y}"/>')
    lines.append("</g>")
    labels = _labels(chart)
    for rashi, (col, row) in enumerate(_SOUTH_CELLS, start=1):
        x, y = col * cell + cell / 2, row * cell
        lines.append(_text(x + 30, y + 14, RASHIS_EN[rashi - 1][:3], 10, "n"))
        stack = (["Asc"] if rashi == chart.ascendant.rashi else []) + labels[rashi]
        lines += _stack(x, y + cell / 2 + 6, stack)
    lines.append(_text(200, 205, "Rashi", 16, "t"))
    return _frame(lines, "South Indian rashi chart")


def render(chart: Chart, style: str) -> str:
    """``style`` is ``north`` or ``south``."""
    if style == "north":
        return north_indian(chart)
    if style == "south":
        return south_indian(chart)
    raise ValueError(f"unknown chart style {style!r}")
