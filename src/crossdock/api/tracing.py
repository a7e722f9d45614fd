"""OpenTelemetry tracing (the optional `otel` extra), off unless `CROSSDOCK_TRACING` says otherwise:

- `console`: spans printed as JSON (for a look while developing);
- `otlp`: spans sent over OTLP/HTTP (needs `opentelemetry-exporter-otlp-proto-http`; the standard
  `OTEL_EXPORTER_OTLP_*` variables say where);
- `global`: the tracer provider the process already has (`opentelemetry-instrument`, an embedding app).

The edge opens one SERVER span per request, a child of the caller's `traceparent`; the span's own
context is what the request's events carry, so a consumer's spans hang under this request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.types import Scope

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

MODES = ("off", "console", "otlp", "global")


class EdgeTracer:
    def __init__(self, tracer: Tracer) -> None:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.tracer = tracer
        self.propagator = TraceContextTextMapPropagator()

    def start(self, scope: Scope) -> tuple[Span, object]:
        """Opens the request's span and makes it current; sets the trace context its writes carry."""
        from opentelemetry import context
        from opentelemetry.trace import SpanKind, set_span_in_context

        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"] if k in _TRACE_HEADERS}
        method = scope["method"]
        span = self.tracer.start_span(
            method,
            context=self.propagator.extract(carrier),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": scope["path"]},
        )
        ctx = set_span_in_context(span)
        out: dict[str, str] = {}
        self.propagator.inject(out, context=ctx)
        if out:
            scope.setdefault("state", {})["trace"] = out
        return span, context.attach(ctx)

    def end(self, span: Span, token: object, method: str, route: str, status: int) -> None:
        from opentelemetry import context
        from opentelemetry.trace import StatusCode

        span.update_name(f"{method} {route}")  # the route is known only once routing ran
        span.set_attribute("http.route", route)
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(StatusCode.ERROR)
        span.end()
        context.detach(token)  # type: ignore[arg-type]


_TRACE_HEADERS = frozenset({b"traceparent", b"tracestate"})


def edge_tracer(mode: str) -> EdgeTracer | None:
    if mode == "off":
        return None
    if mode not in MODES:
        raise ValueError(f"CROSSDOCK_TRACING={mode!r}: one of {', '.join(MODES)}")
    try:
        from opentelemetry import trace
    except ImportError:
        raise RuntimeError(f"CROSSDOCK_TRACING={mode} needs the otel extra: pip install 'crossdock[otel]'") from None
    if mode == "global":
        return EdgeTracer(trace.get_tracer("crossdock"))
    return EdgeTracer(_provider(mode).get_tracer("crossdock"))


def _provider(mode: str) -> Any:
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
    except ImportError:
        raise RuntimeError(f"CROSSDOCK_TRACING={mode} needs the otel extra: pip install 'crossdock[otel]'") from None
    exporter: SpanExporter
    if mode == "console":
        exporter = ConsoleSpanExporter()
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise RuntimeError("CROSSDOCK_TRACING=otlp needs opentelemetry-exporter-otlp-proto-http") from None
        exporter = OTLPSpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "crossdock"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider
