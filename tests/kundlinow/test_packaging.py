"""A non-editable install (the Docker image's) carries every package and data file."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _packages() -> list[str]:
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    include = config["options.packages.find"]["include"]
    return sorted({line.strip().rstrip("*") for line in include.splitlines() if line.strip()})


def test_wheel_has_every_package_data_file_and_the_command(tmp_path: Path) -> None:
    # Built from a copy, so the checkout gets no build/ or *.egg-info.
    source = tmp_path / "src"
    source.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    for package in _packages():
        shutil.copytree(
            REPO / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-v",  # the build backend's warnings are shown only with -v
            "-w",
            str(tmp_path),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
        cwd=source,
        text=True,
    )
    # No "Package 'x' is absent from the `packages` configuration" wall on every install.
    assert "absent from the `packages` configuration" not in built.stdout + built.stderr
    (wheel,) = tmp_path.glob("kundlinow-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in _packages():
        assert f"{package}/__init__.py" in names, package
    for data in [
        *REPO.glob("kundlinow/migrations/*.sql"),
        *REPO.glob("signalling/schemas/**/*.json"),
    ]:
        assert data.relative_to(REPO).as_posix() in names, data
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "kundlinow = kundlinow.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_dockerfile_copies_every_package() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\w+) \./\1$", dockerfile, re.MULTILINE))
    assert set(_packages()) <= copied, f"add to the Dockerfile: {set(_packages()) - copied}"
    assert "COPY client " in dockerfile
    assert "HEALTHCHECK" in dockerfile and "/healthz" in dockerfile
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.MULTILINE)


def test_the_project_is_mit_licensed_and_vendored_code_has_notices() -> None:
    assert (REPO / "LICENSE").read_text().startswith("MIT License")
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    assert config["metadata"]["license"] == "MIT"
    notices = (REPO / "THIRD_PARTY_NOTICES.md").read_text()
    vendor = REPO / "client" / "vendor"
    vendored = sorted([*vendor.glob("*.js"), *vendor.glob("*.mjs")]) if vendor.is_dir() else []
    for path in vendored:
        # Each vendored library is named in the notices ("preact", "htm", ...).
        library = re.split(r"[.\-_]", path.name, maxsplit=1)[0]
        assert f"client/vendor/{library}" in notices, f"{path.name}: add it to the notices"
