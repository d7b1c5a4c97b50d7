"""Fixtures of the kundlinow (composition root, CLI) tests."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def pg_dir() -> Iterator[Path]:
    """A data directory's parent outside pytest's temporary root. pgserver runs PostgreSQL as
    its own system user, which must traverse every parent directory; pytest resets its root
    (/tmp/pytest-of-<user>) to mode 0700 whenever another pytest session starts on the machine,
    which made these tests fail at random on a shared machine ("Permission denied")."""
    path = Path(tempfile.mkdtemp(prefix="kundlinow-serve-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)
