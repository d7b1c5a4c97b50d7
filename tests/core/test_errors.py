"""Every error class that carries a code is a CodedError: the REST middleware and the socket
dispatcher recognise client errors by that type alone, so a look-alike would become a 500."""

from __future__ import annotations

import ast
import configparser
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _packages() -> list[str]:
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    return config["importlinter"]["root_packages"].split()


def _sets_code(cls: ast.ClassDef) -> bool:
    for node in ast.walk(cls):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            if isinstance(target, ast.Name) and target.id == "code":
                return True
            if isinstance(target, ast.Attribute) and target.attr == "code":
                return True
    return False


def test_every_exception_with_a_code_subclasses_coded_error() -> None:
    look_alikes: list[str] = []
    for package in _packages():
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.ClassDef) or not _sets_code(node):
                    continue
                if node.name == "CodedError":  # the base itself
                    continue
                bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in
                         node.bases}
                if bases & {"Exception", "ValueError", "RuntimeError", "LookupError"}:
                    look_alikes.append(f"{path.relative_to(REPO)}: {node.name}")
    assert not look_alikes, "subclass core.errors.CodedError instead: " + ", ".join(look_alikes)
