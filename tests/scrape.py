"""Reading ``/metrics`` in tests: the text exposition parsed by prometheus_client's own parser."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


@dataclass(frozen=True)
class Scrape:
    """One scrape: families by name and every sample."""

    families: dict[str, str]
    """Family name (``kundlinow_http_requests``) → type (``counter``)."""
    samples: list[Sample]

    @classmethod
    def parse(cls, text: str) -> Scrape:
        families: dict[str, str] = {}
        samples: list[Sample] = []
        for family in text_string_to_metric_families(text):
            families[family.name] = family.type
            samples.extend(family.samples)
        return cls(families, samples)

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples of series ``name`` (``…_total``, ``…_count``, a gauge) whose
        labels include ``labels``; 0.0 when there is none."""
        return sum(
            s.value for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    def has(self, name: str, **labels: str) -> bool:
        return any(
            s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
            for s in self.samples
        )
