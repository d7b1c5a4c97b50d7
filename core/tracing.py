"""OpenTelemetry tracing: one tracer provider per process, the official instrumentations, and
the spans of a consultation's lifecycle.

Off by default (``OTEL_TRACES_EXPORTER=none``): the provider is OpenTelemetry's no-op one, no
instrumentation is installed and a lifecycle span costs one no-op call. With
``OTEL_TRACES_EXPORTER=otlp`` spans go in batches, from a background thread, to the collector
at ``OTEL_EXPORTER_OTLP_ENDPOINT`` over OTLP/HTTP (protobuf). The media fast path (per-packet
forwarding in media/) never starts a span.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Coroutine, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from aiohttp.typedefs import Middleware
from opentelemetry import trace
from opentelemetry.trace import NoOpTracerProvider, Tracer, TracerProvider

EXPORTERS = ("none", "otlp")
TRACES_PATH = "/v1/traces"
"""Appended to ``OTEL_EXPORTER_OTLP_ENDPOINT``, as the OTLP exporter specification says."""
CONSULTATION_ID = "consultation.id"
"""The span attribute naming the consultation a span belongs to."""


@dataclass(frozen=True, slots=True)
class TracingSettings:
    """The standard ``OTEL_*`` variables this service honours (read in kundlinow/config.py)."""

    exporter: str = "none"
    """``OTEL_TRACES_EXPORTER``: ``none`` (the default here) or ``otlp``."""
    endpoint: str = "http://localhost:4318"
    """``OTEL_EXPORTER_OTLP_ENDPOINT``: the collector's OTLP/HTTP base URL."""
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    """``OTEL_EXPORTER_OTLP_HEADERS``: e.g. the collector's API key."""
    service_name: str = "kundlinow"
    """``OTEL_SERVICE_NAME``."""
    sample_ratio: float = 1.0
    """``OTEL_TRACES_SAMPLER_ARG``: the share of new traces kept (parent-based)."""

    @property
    def enabled(self) -> bool:
        return self.exporter == "otlp"


def _exporting_provider(settings: TracingSettings, instance_id: str | None) -> TracerProvider:
    # Imported here: a process that never exports never loads the SDK.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    attributes = {"service.name": settings.service_name}
    if instance_id:
        attributes["service.instance.id"] = instance_id
    provider = SdkTracerProvider(
        resource=Resource.create(attributes),
        sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
    )
    exporter = OTLPSpanExporter(
        endpoint=settings.endpoint.rstrip("/") + TRACES_PATH, headers=dict(settings.headers)
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


class Tracing:
    """The process's tracer provider and the instrumentations bound to it.

    ``start()`` instruments asyncpg (its instrumentation can only patch the driver's classes, so
    one exporting app per process), ``close()`` removes it and flushes the spans left.
    """

    def __init__(self, settings: TracingSettings, instance_id: str | None = None) -> None:
        self.settings = settings
        self.provider: TracerProvider = (
            _exporting_provider(settings, instance_id) if settings.enabled
            else NoOpTracerProvider()
        )
        self.tracer: Tracer = self.provider.get_tracer("kundlinow")

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    def server_middlewares(self) -> list[Middleware]:
        """The aiohttp server instrumentation (a SERVER span per request), when exporting."""
        if not self.enabled:
            return []
        from opentelemetry.instrumentation.aiohttp_server import (
            AioHttpServerInstrumentor,
            create_aiohttp_middleware,
        )

        # instrument() sets up the module (excluded URLs, semantic conventions, meters) and
        # swaps aiohttp's Application class for the whole process; this app takes the
        # middleware itself, placed after the trusted-proxy rewrite, so the swap is undone.
        instrumentor = AioHttpServerInstrumentor()
        instrumentor.instrument(tracer_provider=self.provider)
        instrumentor.uninstrument()
        return [create_aiohttp_middleware(tracer_provider=self.provider)]

    def instrument_redis(self, client: Any) -> None:
        """A CLIENT span per command (and pipeline) of this Redis client, when exporting."""
        if self.enabled:
            from opentelemetry.instrumentation.redis import RedisInstrumentor

            RedisInstrumentor.instrument_client(client, tracer_provider=self.provider)

    def start(self) -> None:
        if self.enabled:
            from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

            AsyncPGInstrumentor().instrument(tracer_provider=self.provider)

    def close(self) -> None:
        """Blocking (the last export): call it in a worker thread."""
        if self.enabled:
            from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

            AsyncPGInstrumentor().uninstrument()
            shutdown = getattr(self.provider, "shutdown", None)
            if shutdown is not None:
                shutdown()


def add_trace_ids(
    _: Any, __: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: ``trace_id`` and ``span_id`` of the span active where a line is
    logged (none with tracing off), so a log line leads to its trace and back."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event["trace_id"] = trace.format_trace_id(context.trace_id)
        event["span_id"] = trace.format_span_id(context.span_id)
    return event


class Traced(Protocol):
    @property
    def tracer(self) -> Tracer: ...


S = TypeVar("S", bound=Traced)
P = ParamSpec("P")
R = TypeVar("R")
Step = Callable[Concatenate[S, P], Coroutine[Any, Any, R]]


def consultation_step(name: str) -> Callable[[Step[S, P, R]], Step[S, P, R]]:
    """Decorate a lifecycle step (a method of an object with a ``tracer``) with a span ``name``
    carrying ``consultation.id``: the method's first argument when it is a UUID, or else the
    ``id`` of what it returns (a new consultation)."""

    def decorate(method: Step[S, P, R]) -> Step[S, P, R]:
        @functools.wraps(method)
        async def traced(self: S, *args: P.args, **kwargs: P.kwargs) -> R:
            with self.tracer.start_as_current_span(name) as span:
                if args and isinstance(args[0], uuid.UUID):
                    span.set_attribute(CONSULTATION_ID, str(args[0]))
                result = await method(self, *args, **kwargs)
                created = getattr(result, "id", None)
                if isinstance(created, uuid.UUID):
                    span.set_attribute(CONSULTATION_ID, str(created))
                return result

        return traced

    return decorate
