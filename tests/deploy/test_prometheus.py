"""deploy/prometheus: promtool accepts the rules and their unit tests pass, and every
``kundlinow_*`` series the rules or docs/OPERATIONS.md name is one a running server exports (and
every series it exports is documented)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import require_program
from tests.scrape import Scrape

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "rules.yml"
RULE_TESTS = REPO / "deploy" / "prometheus" / "rules.test.yml"
OPERATIONS = REPO / "docs" / "OPERATIONS.md"
PROMTOOL = "/usr/bin/promtool"
INSTALL = "apt-get install prometheus (Debian's package carries promtool)"

_SERIES = re.compile(r"\bkundlinow_[a-z0-9_]+")
_SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")


def _family(series: str) -> str:
    """The metric family a series belongs to (``…_total`` → its counter, ``…_bucket`` → …)."""
    for suffix in _SUFFIXES:
        if series.endswith(suffix):
            return series[: -len(suffix)]
    return series


def _named(path: Path) -> set[str]:
    return {_family(name) for name in _SERIES.findall(path.read_text())}


def _promtool(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    require_program(PROMTOOL, "promtool", INSTALL)
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_promtool_accepts_the_rules() -> None:
    checked = _promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


def test_the_rules_unit_tests_pass() -> None:
    tested = _promtool("test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_promtool_refuses_a_broken_rule(tmp_path: Path) -> None:
    """The check above can fail: a rule with a bad expression is refused."""
    broken = tmp_path / "rules.yml"
    broken.write_text(RULES.read_text().replace("> 0.05", "> > 0.05", 1))
    assert _promtool("check", "rules", str(broken)).returncode != 0


async def test_every_named_series_is_exported_and_documented(
    client: TestClient[Any, Any],
) -> None:
    response = await client.get("/metrics")
    assert response.status == 200
    # prometheus_client's `_created` timestamps parse as gauges of their own: not ours to list
    exported = {name for name in Scrape.parse(await response.text()).families
                if name.startswith("kundlinow_") and not name.endswith("_created")}
    documented = _named(OPERATIONS)
    in_rules = _named(RULES)
    assert in_rules, "the rules name no kundlinow series"
    assert in_rules - exported == set(), "rules name series no server exports"
    assert documented - exported == set(), "docs/OPERATIONS.md names series no server exports"
    assert exported - documented == set(), "exported series missing from docs/OPERATIONS.md"
