"""What a newcomer sees (issue 11, point 25): a quiet `make serve` that ends with the URL and
the demo logins, a user-facing `kundlinow --help`, every command in the README, and one line
saying what to install when a test's program is missing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from api.seed import DEMO_ACCOUNTS
from kundlinow.cli import build_parser
from kundlinow.config import Settings
from tests.conftest import require_program
from tests.kundlinow.test_serve import REPO, START_TIMEOUT_S, _env, free_port


def test_make_serve_runs_one_process() -> None:
    makefile = (REPO / "Makefile").read_text()
    recipe = makefile.split("\nserve:", 1)[1].split("\n\n", 1)[0]
    assert [line.strip() for line in recipe.splitlines()[1:]] == [
        "$(PY) -m kundlinow serve --demo"
    ]


def test_serve_demo_is_quiet_and_ends_with_the_url_and_the_logins(
    tmp_path: Path, pg_dir: Path
) -> None:
    port = free_port()
    env = _env(pg_dir, port)
    env.pop("XDG_RUNTIME_DIR", None)
    out = tmp_path / "serve.out"
    with out.open("w") as sink:
        server = subprocess.Popen(
            [sys.executable, "-m", "kundlinow", "serve", "--demo"],
            cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT, text=True,
        )
    url_line = f"kundlinow is running at http://127.0.0.1:{port}/ (Ctrl-C stops)"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while url_line not in out.read_text():
            assert server.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.25)
    finally:
        server.terminate()
        server.wait(timeout=60)
    lines = out.read_text().splitlines()
    end = lines.index(url_line)
    tail = lines[: end + 1]
    assert tail[-1] == url_line
    logins = tail[-len(DEMO_ACCOUNTS) - 3 : -1]
    for account in DEMO_ACCOUNTS:
        assert any(account.email in line and account.password in line for line in logins)
    text = "\n".join(tail)
    assert "XDG_RUNTIME_DIR" not in text
    assert '"logger": "pgserver"' not in text  # initdb and pg_ctl chatter
    assert text.count("embedded_postgres_started") == 1  # the database started once
    assert len(tail) < 40, text


def test_help_is_for_users_and_lists_every_command() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "kundlinow", "--help"], cwd=REPO, capture_output=True,
        text=True, timeout=60, env={**os.environ, "LOG_LEVEL": "WARNING"},
    )
    assert shown.returncode == 0
    assert "serve --demo" in shown.stdout and ".env.example" in shown.stdout
    assert ":data:" not in shown.stdout and "``" not in shown.stdout  # no developer docstring
    for command in ("serve", "migrate", "seed-demo", "admin", "billing", "payouts"):
        assert re.search(rf"^\s+{command}\s", shown.stdout, re.MULTILINE), command


def test_the_readme_command_table_has_every_command() -> None:
    readme = (REPO / "README.md").read_text()
    table = [line for line in readme.splitlines() if line.startswith("| `kundlinow ")]
    documented = {line.split("`")[1].split()[1] for line in table}
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    commands = set(subparsers.choices)  # type: ignore[arg-type]
    assert commands <= documented, f"add to the README table: {sorted(commands - documented)}"


def test_a_missing_program_is_one_line_to_install_and_fails_in_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception) as skipped:
        require_program("/nonexistent/chromium", "Chromium", "apt-get install chromium")
    assert str(skipped.value) == (
        "Chromium is not installed (/nonexistent/chromium missing): apt-get install chromium"
    )
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        require_program("/nonexistent/chromium", "Chromium", "apt-get install chromium")
    require_program(sys.executable, "Python", "-")  # present: nothing happens


def test_serve_demo_is_refused_in_production(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    args = build_parser().parse_args(["serve", "--demo"])
    assert args.func(replace(settings, env="production"), args) == 2
    assert "production" in capsys.readouterr().err
