"""The kundli, computed offline: Lahiri sidereal chart (:mod:`astrology.chart`), Vimshottari
dasha, North/South Indian SVG, birthplaces and their time-zone history. Imports no web,
database or socket code."""
