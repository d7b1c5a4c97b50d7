"""structlog set-up: console on a TTY, JSON lines otherwise; stdlib loggers routed through it.

Context (request id, user id, consultation id) is bound with ``structlog.contextvars`` and so
reaches aiohttp's, aiortc's and aioice's lines too; so do the trace and span ids of the active
OpenTelemetry span (core/tracing.py).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from core.tracing import add_trace_ids

SECRET_FIELDS = frozenset(
    {"password", "token", "access_token", "authorization", "secret", "credential", "jwt"}
)


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Never let a secret reach a log line, whoever logged it."""
    for key in event.keys() & SECRET_FIELDS:
        event[key] = "[redacted]"
    return event


def configure_logging(log_format: str = "auto", level: str = "INFO") -> None:
    """Configure structlog and the standard library's root logger once per process."""
    json_lines = log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        add_trace_ids,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_lines
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        # Standard-library records (media, aiortc, aiohttp) keep their ``extra=`` fields
        # (room_id, participant_id ...) as keys of the line, like structlog's own key-values.
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's own access log is replaced by ours (one structured line per request).
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # pgserver (the embedded PostgreSQL) logs every initdb/pg_ctl command and its output at
    # INFO: dozens of lines on each start. Only its warnings matter to whoever runs `serve`.
    logging.getLogger("pgserver").setLevel(max(logging.getLevelName(level), logging.WARNING))
    for noisy in ("aioice", "aiortc"):
        logging.getLogger(noisy).setLevel(max(logging.getLevelName(level), logging.INFO))
