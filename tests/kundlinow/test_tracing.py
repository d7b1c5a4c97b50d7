"""Tracing end to end: a real server process exports its spans over OTLP/HTTP to a stand-in
collector (tests/otlp_collector.py) while a real consultation runs: REST request, WebSocket
accept, join and chat, billing ticks, REST end with the automatic refund of an unanswered chat.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from core.db import Database
from kundlinow.config import ConfigError, Settings, from_env
from tests.billing.helpers import grant
from tests.factories import auth, create_user
from tests.otlp_collector import Collector, ReceivedSpan, running_collector
from tests.polling import eventually
from tests.signalling.cluster import Node, serve_nodes
from tests.signalling.wsclient import connect

SERVER, CLIENT = 2, 3
"""``Span.SpanKind`` values of the OTLP protobuf."""
NODE_ENV = {
    "LOG_LEVEL": "INFO", "BILLING_MINUTE_SECONDS": "1", "BILLING_TICK_INTERVAL": "0.2",
    "OTEL_SERVICE_NAME": "kundlinow-test",
}


@pytest.fixture
async def collector() -> AsyncIterator[tuple[Collector, str]]:
    async with running_collector() as running:
        yield running


def _log_lines(node: Node) -> list[dict[str, Any]]:
    lines = []
    for raw in node.log.read_text().splitlines():
        try:
            lines.append(json.loads(raw))
        except ValueError:
            continue
    return lines


def _is_postgres(span: ReceivedSpan) -> bool:
    system = span.attributes.get("db.system") or span.attributes.get("db.system.name")
    return span.kind == CLIENT and system == "postgresql"


def _is_redis(span: ReceivedSpan) -> bool:
    system = span.attributes.get("db.system") or span.attributes.get("db.system.name")
    return span.kind == CLIENT and system == "redis"


def _ancestors(collector: Collector, span: ReceivedSpan) -> list[ReceivedSpan]:
    chain = []
    parent = collector.by_id(span.parent_id) if span.parent_id else None
    while parent is not None:
        chain.append(parent)
        parent = collector.by_id(parent.parent_id) if parent.parent_id else None
    return chain


async def _consultation(node: Node, database: Database, settings: Settings) -> tuple[str, str]:
    """REST request, socket accept/join/chat (the astrologer never answers), two charged
    minutes, a second caller waiting, REST end, the astrologer offered to the waiting caller;
    the consultation's and the waiting caller's ids."""
    astro = await create_user(database, settings, "consultant")
    caller = await create_user(database, settings)
    waiter = await create_user(database, settings)
    await grant(database, caller.id, 50_000)
    await grant(database, waiter.id, 50_000)
    async with aiohttp.ClientSession() as session:
        astro_ws = await connect(session, f"{node.url}/ws", astro.token)
        caller_ws = await connect(session, f"{node.url}/ws", caller.token)
        waiter_ws = await connect(session, f"{node.url}/ws", waiter.token)
        async with session.post(
            f"{node.url}/consultations", headers=auth(caller.token),
            json={"consultant_id": str(astro.id), "mode": "chat"},
        ) as response:
            assert response.status == 201, await response.text()
            cid: str = (await response.json())["id"]
        await astro_ws.ok("accept", {"consultation_id": cid})
        await caller_ws.ok("join_consult", {"consultation_id": cid})
        await caller_ws.ok("message", {"consultation_id": cid, "client_id": "c1",
                                       "text": "namaste"})
        queued = await waiter_ws.ok("consult_request", {"consultant_id": str(astro.id),
                                                        "mode": "chat", "waitlist": True})
        assert queued["waitlisted"] is True
        # minute 1 is charged by accept, the next ones by the ticks (several at once when busy)
        while (await caller_ws.event("billing_tick", consultation_id=cid))["minutes"] < 2:
            pass
        async with session.post(
            f"{node.url}/consultations/{cid}/end", headers=auth(caller.token), json={}
        ) as response:
            assert response.status == 200, await response.text()
        await waiter_ws.event("waitlist", status="offered")
        for ws in (astro_ws, caller_ws, waiter_ws):
            await ws.close()
    return cid, str(waiter.id)


async def test_a_consultation_is_traced_and_logged_with_its_trace_ids(
    collector: tuple[Collector, str], db_dsn: str, redis_url: str, redis_prefix: str,
    database: Database, settings: Settings, tmp_path: Path,
) -> None:
    spans, endpoint = collector
    async with serve_nodes(
        db_dsn, redis_url, redis_prefix, tmp_path, names="a", **NODE_ENV,
        OTEL_TRACES_EXPORTER="otlp", OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
    ) as (node,):
        cid, waiter = await _consultation(node, database, settings)

        def of_consultation(name: str) -> list[ReceivedSpan]:
            return [s for s in spans.named(name) if s.attributes.get("consultation.id") == cid]

        steps = ("consultation.request", "consultation.accept", "consultation.minute_charged",
                 "consultation.end", "consultation.refund", "ws accept", "ws join_consult",
                 "ws message")
        # the batch processor exports every few seconds
        arrived = await eventually(lambda: all(of_consultation(n) for n in steps), 60, 0.2)
        assert arrived, f"missing: {[n for n in steps if not of_consultation(n)]}"

        # aiohttp server span -> the request step -> its SQL, in one trace
        (request,) = of_consultation("consultation.request")
        server = spans.by_id(request.parent_id)
        assert server is not None and server.kind == SERVER
        assert server.name == "POST /consultations"
        queries = [s for s in spans.spans if s.parent_id == request.span_id and _is_postgres(s)]
        assert queries and {q.trace_id for q in queries} == {server.trace_id}
        assert server.resource["service.name"] == "kundlinow-test"

        # a socket message is a trace of its own, linked to the socket's request span
        (accept,) = of_consultation("ws accept")
        assert accept.parent_id == "" and accept.attributes["ws.message.type"] == "accept"
        assert len(accept.linked) == 1  # the socket's span: exported once the socket closed
        assert await eventually(lambda: spans.by_id(accept.linked[0]) is not None, 30, 0.2)
        socket = spans.by_id(accept.linked[0])
        assert socket is not None and socket.name == "GET /ws" and socket.kind == SERVER
        (accepted,) = of_consultation("consultation.accept")
        assert accepted.parent_id == accept.span_id
        assert any(_is_postgres(s) and s.parent_id == accepted.span_id for s in spans.spans)

        # the tick's charge of minute 2, and the end's refund of the unanswered chat
        charged = {s.attributes["billing.minute"]: s for s in of_consultation(
            "consultation.minute_charged")}
        assert charged[1].parent_id == accepted.span_id
        assert any(  # the end charges any minute the ticks had not reached yet
            any(p.name == "billing.tick" for p in _ancestors(spans, s))
            for minute, s in charged.items() if minute >= 2
        )
        (ended,) = of_consultation("consultation.end")
        (refund,) = of_consultation("consultation.refund")
        assert refund.parent_id == ended.span_id
        assert spans.by_id(ended.parent_id) is not None
        assert spans.by_id(ended.parent_id).name == "POST /consultations/{id}/end"  # type: ignore[union-attr]
        assert any(_is_redis(s) for s in spans.spans)  # the bus publishes through Redis
        # the freed astrologer offered to the caller waiting
        assert await eventually(
            lambda: any(s.attributes.get("caller.id") == waiter
                        for s in spans.named("consultation.offer")), 30, 0.2
        )

        # the log line of the request carries the trace and span of its step
        logged = [line for line in _log_lines(node)
                  if line.get("event") == "consultation_requested"
                  and line.get("consultation_id") == cid]
        assert logged, "no consultation_requested line"
        assert logged[0]["trace_id"] == request.trace_id
        assert logged[0]["span_id"] == request.span_id
        access = [line for line in _log_lines(node) if line.get("event") == "request_handled"
                  and line.get("path") == "/consultations"]
        assert access and access[0]["trace_id"] == server.trace_id


async def test_with_export_off_nothing_is_sent_and_no_trace_ids_are_logged(
    collector: tuple[Collector, str], db_dsn: str, redis_url: str, redis_prefix: str,
    database: Database, settings: Settings, tmp_path: Path,
) -> None:
    spans, endpoint = collector
    async with serve_nodes(
        db_dsn, redis_url, redis_prefix, tmp_path, names="a", **NODE_ENV,
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,  # an endpoint alone does not turn export on
    ) as (node,):
        cid, _ = await _consultation(node, database, settings)
    # the node has exited: a provider would have flushed its spans on the way out
    assert node.process.returncode is not None
    assert spans.requests == 0 and spans.spans == []
    lines = _log_lines(node)
    assert any(line.get("consultation_id") == cid for line in lines)
    assert not [line for line in lines if "trace_id" in line]


def test_the_otel_settings_are_validated() -> None:
    assert not from_env({}).tracing.enabled
    on = from_env({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_HEADERS": "api-key=s3cr%20t",
                   "OTEL_TRACES_SAMPLER_ARG": "0.25"}).tracing
    assert on.enabled and on.headers == {"api-key": "s3cr t"} and on.sample_ratio == 0.25
    for name, bad in (("OTEL_TRACES_EXPORTER", "jaeger"), ("OTEL_TRACES_SAMPLER_ARG", "2"),
                      ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
                      ("OTEL_EXPORTER_OTLP_HEADERS", "nokey")):
        with pytest.raises(ConfigError, match=name):
            from_env({name: bad})
