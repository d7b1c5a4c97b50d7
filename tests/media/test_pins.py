"""The media plane reaches into aiortc/aioice/pylibsrtp internals: only in media/aiortc_glue.py,
and only against the exact versions pinned in setup.cfg."""

from __future__ import annotations

import ast
import configparser
import re
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PINNED = ("aiortc", "aioice", "pylibsrtp")


def _pins() -> dict[str, str]:
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    pins: dict[str, str] = {}
    for line in config["options"]["install_requires"].splitlines():
        match = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)==([^\s;]+)\s*", line)
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def test_installed_media_libraries_are_the_pinned_versions() -> None:
    pins = _pins()
    for name in PINNED:
        assert name in pins, f"setup.cfg must pin {name}==<version>"
        assert version(name) == pins[name], (
            f"{name} {version(name)} is installed but setup.cfg pins {pins[name]}: "
            "media/aiortc_glue.py depends on its internals; re-check them before moving the pin"
        )


def _own_private_names(paths: list[Path]) -> set[str]:
    """Underscore names media code defines itself (attributes, functions, classes, globals)."""
    names: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
    return {n for n in names if n.startswith("_")}


def test_private_library_attributes_are_touched_only_in_the_glue() -> None:
    media = sorted((REPO / "media").glob("*.py"))
    own = _own_private_names(media)
    slots = {"__init__", "__class__", "__name__", "__dict__", "__slots__"}
    offenders: list[str] = []
    for path in media:
        if path.name == "aiortc_glue.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Attribute) or not node.attr.startswith("_"):
                continue
            if node.attr in own or node.attr in slots:
                continue
            offenders.append(f"{path.name}:{node.lineno} .{node.attr}")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and any(
                part.startswith("_") and not part.startswith("__")
                for part in node.module.split(".")
            ):
                offenders.append(f"{path.name}:{node.lineno} from {node.module}")
    assert not offenders, "private aiortc/aioice access outside media/aiortc_glue.py: " + ", ".join(
        offenders
    )
