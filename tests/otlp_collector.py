"""A stand-in OpenTelemetry collector: OTLP/HTTP on loopback that decodes every
``ExportTraceServiceRequest`` (opentelemetry-proto) into :class:`ReceivedSpan` records.

The collector is a server we do not run in tests, so it is faked at its HTTP boundary; the
service's exporter, batching and protobuf encoding are the real ones. ``python -m
tests.otlp_collector --port N`` runs one as its own process (bench/http.py's export-on run) and
prints how many spans it received when stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

TRACES_PATH = "/v1/traces"


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in pairs if isinstance(kv, KeyValue)}


@dataclass(frozen=True, slots=True)
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    """Empty for a root span."""
    kind: int
    """The protobuf enum: 1 internal, 2 server, 3 client."""
    attributes: dict[str, Any]
    resource: dict[str, Any]
    linked: tuple[str, ...]
    """Span ids this span links to."""


@dataclass
class Collector:
    spans: list[ReceivedSpan] = field(default_factory=list)
    requests: int = 0

    async def traces(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        export = ExportTraceServiceRequest.FromString(body)
        self.requests += 1
        for resource_spans in export.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                self.spans.extend(
                    ReceivedSpan(
                        name=s.name, trace_id=s.trace_id.hex(), span_id=s.span_id.hex(),
                        parent_id=s.parent_span_id.hex(), kind=s.kind,
                        attributes=_attributes(s.attributes), resource=resource,
                        linked=tuple(link.span_id.hex() for link in s.links),
                    )
                    for s in scope_spans.spans
                )
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )

    def named(self, name: str) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.name == name]

    def by_id(self, span_id: str) -> ReceivedSpan | None:
        return next((s for s in self.spans if s.span_id == span_id), None)


@asynccontextmanager
async def running_collector(port: int = 0) -> AsyncIterator[tuple[Collector, str]]:
    """A collector listening on 127.0.0.1 and its base URL (``OTEL_EXPORTER_OTLP_ENDPOINT``)."""
    collector = Collector()
    app = web.Application(client_max_size=64 << 20)
    app.router.add_post(TRACES_PATH, collector.traces)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound = runner.addresses[0][1]
    try:
        yield collector, f"http://127.0.0.1:{bound}"
    finally:
        await runner.cleanup()


async def _serve(port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with running_collector(port) as (collector, url):
        print(f"listening {url}", flush=True)
        await stop.wait()
    print(f"received {len(collector.spans)} spans in {collector.requests} requests", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(_serve(parser.parse_args().port))
