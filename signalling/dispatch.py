"""The dispatch table: each client message type to its handler, and errors to ``error`` frames."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind, StatusCode

from core.db import is_connection_lost
from core.errors import CodedError
from core.tracing import CONSULTATION_ID
from signalling import errors, protocol
from signalling.connection import Connection
from signalling.context import HubContext
from signalling.handlers import call, chat, lifecycle, waitlist
from signalling.ports import jsonable

log = structlog.get_logger(__name__)

Handler = Callable[[HubContext, Connection, dict[str, Any]], Awaitable[dict[str, Any]]]

HANDLERS: Mapping[str, Handler] = {
    "ping": lifecycle.ping,
    "consult_request": lifecycle.consult_request,
    "accept": lifecycle.accept,
    "reject": lifecycle.reject,
    "session_end": lifecycle.session_end,
    "join_consult": lifecycle.join_consult,
    "leave_consult": lifecycle.leave_consult,
    "message": chat.message,
    "typing": chat.typing,
    "read": chat.read,
    "media_state": call.media_state,
    **{kind: functools.partial(call.call_signal, kind) for kind in call.SIGNALS},
    "presence": waitlist.presence,
    "waitlist": waitlist.waitlist,
}
"""Every client message type but ``auth`` (answered by the session itself)."""

# A schema without a handler would fail at run time as INTERNAL: refuse to import instead.
_unhandled = protocol.CLIENT_TYPES - HANDLERS.keys() - {"auth"}
if _unhandled:
    raise RuntimeError(f"client message types without a handler: {sorted(_unhandled)}")

async def dispatch(ctx: HubContext, conn: Connection, message: protocol.ClientMessage) -> str:
    """Run the handler of ``message``; the ack or ``error`` frame to send back.

    Each message is a span ``ws <type>`` of a trace of its own, linked to the socket's request
    span: a socket lives for hours, its messages are separate operations."""
    socket = trace.get_current_span().get_span_context()
    attributes: dict[str, str] = {"ws.message.type": message.type}
    room = message.data.get("consultation_id")
    if isinstance(room, str):
        attributes[CONSULTATION_ID] = room
    with ctx.services.tracer.start_as_current_span(
        f"ws {message.type}", context=Context(), kind=SpanKind.SERVER, attributes=attributes,
        links=[Link(socket)] if socket.is_valid else None,
    ) as span:
        try:
            result = await HANDLERS[message.type](ctx, conn, message.data)
        except CodedError as exc:
            # Ours, or a domain error of billing (INSUFFICIENT_BALANCE ...) or of media
            # (BAD_SDP, GLARE ...): passed on with its stable code.
            span.set_attribute("error.code", exc.code)
            return protocol.error(message.id, exc.code, exc.message, jsonable(exc.details))
        except Exception as exc:
            if is_connection_lost(exc):
                # Its transaction was rolled back: the client may send it again (the HTTP
                # side's api/dbretry.py answers 503 DATABASE_UNAVAILABLE for the same reason).
                log.warning("signal_database_lost", type=message.type, conn=conn.id,
                            error=str(exc))
                span.set_attribute("error.code", errors.DATABASE_UNAVAILABLE)
                return protocol.error(message.id, errors.DATABASE_UNAVAILABLE,
                                      "the database connection was lost; try again")
            log.exception("signal_handler_failed", type=message.type, conn=conn.id)
            span.record_exception(exc)
            span.set_status(StatusCode.ERROR)
            return protocol.error(message.id, errors.INTERNAL, "internal error")
        return protocol.ack(message.id, result)
