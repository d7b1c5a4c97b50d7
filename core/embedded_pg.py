"""The embedded PostgreSQL used when ``DATABASE_URL`` is unset (one machine, no set-up).

pgserver ships PostgreSQL binaries in a wheel; the data directory survives restarts.
"""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)


class EmbeddedPostgres:
    """Starts PostgreSQL from the pgserver wheel under ``data_dir``; stop it with :meth:`stop`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self._server: Any = None

    async def start(self) -> str:
        """Start (or attach to) the server and return its DSN."""
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI, root shells) and
        # then uses a fine fallback; pgserver asks it for a runtime directory on every start.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        import pgserver  # imported lazily: production never needs it

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._server = await asyncio.to_thread(
            pgserver.get_server, self.data_dir, cleanup_mode="stop"
        )
        dsn: str = self._server.get_uri()
        log.info("embedded_postgres_started", data_dir=str(self.data_dir))
        return dsn

    async def stop(self) -> None:
        if self._server is not None:
            await asyncio.to_thread(self._server.cleanup)
            self._server = None
            log.info("embedded_postgres_stopped")
