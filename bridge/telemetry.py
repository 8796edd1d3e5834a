"""OpenTelemetry: traces and metrics for calls, configured by the standard `OTEL_*` variables.

- No exporter configured (or `OTEL_SDK_DISABLED=true`) means the API's no-op tracer: no cost.
- One span per call (`rtvbp.session`), continuing a `traceparent` sent on the upgrade request; spans for
  control requests both ways and for control messages on AMQP, named after operations and exchanges,
  never after session ids; W3C context travels in AMQP headers both ways.
- Audio is covered by metrics only. Hot-path counters are plain ints folded in at collection time
  (observable instruments), so a frame costs no metric call.
"""

from __future__ import annotations

import contextvars
import importlib
import logging
import os
import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.propagate import extract, inject
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
)

log = logging.getLogger("bridge.telemetry")

INSTRUMENTATION = "rtvbp-bridge"
SESSION_SPAN = "rtvbp.session"


# The session id of the call a task works for, stamped on its log records.
current_session: contextvars.ContextVar[str] = contextvars.ContextVar("rtvbp_session", default="")


class LogContext(logging.Filter):
    """Adds `session_id`, `trace_id` and `span_id` to every record, for JSON logs and correlation."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.session_id = current_session.get()
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            record.trace_id = format(span_context.trace_id, "032x")
            record.span_id = format(span_context.span_id, "016x")
        return True


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def exporter_configured(signal: str) -> bool:
    """Whether the environment asks for an exporter of `signal` ("traces" or "metrics").

    The standard rules: OTEL_SDK_DISABLED wins; OTEL_<SIGNAL>_EXPORTER=none disables; any other exporter
    name, or an OTLP endpoint (general or per signal), enables. Nothing set means no SDK at all.
    """
    if _env_true("OTEL_SDK_DISABLED"):
        return False
    exporter = os.environ.get(f"OTEL_{signal.upper()}_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    endpoints = ("OTEL_EXPORTER_OTLP_ENDPOINT", f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
    return bool(exporter) or any(os.environ.get(v) for v in endpoints)


def install_providers(prometheus: bool) -> Callable[[], None]:
    """Set global tracer/meter providers from the environment. Returns a shutdown (flush) function."""
    from opentelemetry.sdk.resources import Resource

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "rtvbp-bridge")})
    shutdowns: list[Callable[[], Any]] = []
    if exporter_configured("traces"):
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

        provider = TracerProvider(resource=resource)
        exporter_name = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
        exporter: SpanExporter = (
            ConsoleSpanExporter() if exporter_name == "console" else _otlp_exporter("traces")
        )
        provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        shutdowns.append(provider.shutdown)
        log.info("tracing to %s", exporter_name)
    readers: list[Any] = []
    if prometheus:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader

        readers.append(PrometheusMetricReader())
    if exporter_configured("metrics"):
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        readers.append(PeriodicExportingMetricReader(_otlp_exporter("metrics")))
    if readers:
        from opentelemetry.sdk.metrics import MeterProvider

        meter_provider = MeterProvider(resource=resource, metric_readers=readers)
        metrics.set_meter_provider(meter_provider)
        shutdowns.append(meter_provider.shutdown)

    def shutdown() -> None:
        for fn in shutdowns:
            try:
                fn()
            except Exception:  # flushing must never stop a shutdown
                log.exception("telemetry shutdown failed")

    return shutdown


def _otlp_exporter(signal: str) -> Any:
    """The OTLP exporter for `signal` ("traces" or "metrics") over the protocol the environment names.

    The exporters read their endpoint, headers and timeouts from the standard variables themselves.
    """
    protocol = os.environ.get(
        f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    )
    transport = "http" if protocol.startswith("http") else "grpc"
    module_name, class_name = {
        "traces": ("trace_exporter", "OTLPSpanExporter"),
        "metrics": ("metric_exporter", "OTLPMetricExporter"),
    }[signal]
    module = importlib.import_module(f"opentelemetry.exporter.otlp.proto.{transport}.{module_name}")
    return getattr(module, class_name)()


def prometheus_text() -> bytes:
    from prometheus_client import REGISTRY, generate_latest

    return generate_latest(REGISTRY)


# ---- process-wide counters, folded into observable instruments ---------------------------------------


@dataclass
class Totals:
    """Counters calls add to with plain integer arithmetic; exported at collection time."""

    frames: dict[str, int] = field(default_factory=lambda: {"in": 0, "out": 0})
    bytes: dict[str, int] = field(default_factory=lambda: {"in": 0, "out": 0})
    dropped_bytes: dict[str, int] = field(default_factory=lambda: {"in": 0, "out": 0})
    underruns: int = 0
    broker_reconnects: Callable[[], int] = lambda: 0
    lost_calls_ended: Callable[[], int] = lambda: 0  # other replicas' calls this one ended (bridge_lost)
    active_sessions: Callable[[], int] = lambda: 0
    session_limit: Callable[[], int] = lambda: 0
    broker_connected: Callable[[], bool] = lambda: False
    draining: Callable[[], bool] = lambda: False
    live: Callable[[], Iterable[Any]] = lambda: ()  # live calls' stats, added to the finished totals


class Telemetry:
    """Tracer, meter and the instruments of the bridge. Cheap when the SDK is not installed as provider."""

    def __init__(self, tracer: Tracer | None = None, meter: Meter | None = None) -> None:
        # Without an SDK provider spans record nothing; paths that run per audio command skip them then.
        self.tracing = tracer is not None or not isinstance(
            trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider
        )
        self.tracer = tracer or trace.get_tracer(INSTRUMENTATION)
        self.meter = meter or metrics.get_meter(INSTRUMENTATION)
        self.totals = Totals()
        m = self.meter
        self.sessions_started = m.create_counter(
            "rtvbp.sessions.started", description="Calls admitted and initialized"
        )
        self.sessions_ended = m.create_counter("rtvbp.sessions.ended", description="Calls ended, by reason")
        self.admission_refused = m.create_counter(
            "rtvbp.admission.refused",
            description="Upgrades refused, by cause (auth, capacity, draining, ...)",
        )
        self.protocol_violations = m.create_counter(
            "rtvbp.protocol.violations", description="Malformed or dropped input, by kind"
        )
        self.request_duration = m.create_histogram(
            "rtvbp.request.duration", unit="s", description="RTVBP requests by method, direction and outcome"
        )
        self.chunk_publish_latency = m.create_histogram(
            "rtvbp.audio.chunk.publish.duration",
            unit="s",
            description="Caller-audio chunk submit to broker confirm",
        )
        self.playout_lead = m.create_histogram(
            "rtvbp.playout.lead",
            unit="ms",
            description="How far sent audio is ahead of real time, sampled per poll",
        )
        m.create_observable_up_down_counter(
            "rtvbp.sessions.active", [self._observe_active], description="Calls currently up"
        )
        # Levels the chart's alerts need (not rates): capacity, broker link, drain.
        m.create_observable_gauge(
            "rtvbp.sessions.limit", [self._observe_limit], description="Calls allowed (BRIDGE_MAX_SESSIONS)"
        )
        m.create_observable_gauge(
            "rtvbp.broker.connected",
            [self._observe_broker],
            description="1 while both broker connections are up and the topology is declared",
        )
        m.create_observable_gauge(
            "rtvbp.draining", [self._observe_draining], description="1 from SIGTERM until the process exits"
        )
        m.create_observable_counter(
            "rtvbp.audio.frames", [self._observe_frames], description="Audio messages"
        )
        m.create_observable_counter(
            "rtvbp.audio.bytes", [self._observe_bytes], unit="By", description="Audio bytes"
        )
        m.create_observable_counter(
            "rtvbp.audio.dropped",
            [self._observe_dropped],
            unit="By",
            description="Audio the bridge had to drop",
        )
        m.create_observable_counter(
            "rtvbp.playout.underruns", [self._observe_underruns], description="Playout ran dry mid-utterance"
        )
        m.create_observable_counter(
            "rtvbp.broker.reconnects", [self._observe_reconnects], description="Broker connections restored"
        )
        m.create_observable_counter(
            "rtvbp.sessions.lost_ended",
            [lambda _: [Observation(self.totals.lost_calls_ended())]],
            description="Calls of lost replicas this replica ended for consumers (session.ended bridge_lost)",
        )

    # ---- observable callbacks ---------------------------------------------------------------------------

    def _live_sum(self, attr: str) -> int:
        return sum(getattr(stats, attr, 0) for stats in self.totals.live())

    def _observe_active(self, _: CallbackOptions) -> Iterable[Observation]:
        yield Observation(self.totals.active_sessions())

    def _observe_limit(self, _: CallbackOptions) -> Iterable[Observation]:
        yield Observation(self.totals.session_limit())

    def _observe_broker(self, _: CallbackOptions) -> Iterable[Observation]:
        yield Observation(int(self.totals.broker_connected()))

    def _observe_draining(self, _: CallbackOptions) -> Iterable[Observation]:
        yield Observation(int(self.totals.draining()))

    def _observe_frames(self, _: CallbackOptions) -> Iterable[Observation]:
        t = self.totals
        yield Observation(t.frames["in"] + self._live_sum("frames_in"), {"direction": "in"})
        yield Observation(t.frames["out"] + self._live_sum("frames_out"), {"direction": "out"})

    def _observe_bytes(self, _: CallbackOptions) -> Iterable[Observation]:
        t = self.totals
        yield Observation(t.bytes["in"] + self._live_sum("bytes_in"), {"direction": "in"})
        yield Observation(t.bytes["out"] + self._live_sum("bytes_out"), {"direction": "out"})

    def _observe_dropped(self, _: CallbackOptions) -> Iterable[Observation]:
        for direction, value in self.totals.dropped_bytes.items():
            yield Observation(value, {"direction": direction})

    def _observe_underruns(self, _: CallbackOptions) -> Iterable[Observation]:
        yield Observation(self.totals.underruns)

    def _observe_reconnects(self, _: CallbackOptions) -> Iterable[Observation]:
        yield Observation(self.totals.broker_reconnects())

    # ---- tracing helpers --------------------------------------------------------------------------------

    def start_session_span(self, upgrade_headers: Mapping[str, str]) -> Span:
        parent = extract(dict(upgrade_headers))
        span = self.tracer.start_span(SESSION_SPAN, context=parent, kind=SpanKind.SERVER)
        if span.get_span_context().is_valid:
            return span
        # No tracing SDK and no caller context: the call still gets a W3C trace id (not sampled), so every
        # message carries a `traceparent` and consumers and logs can correlate on it (AMQP contract).
        return untraced_span()

    @contextmanager
    def activate(self, span: Span) -> Iterator[None]:
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            yield
        finally:
            otel_context.detach(token)

    def child_span(
        self, name: str, parent: Span | None, kind: SpanKind, attributes: Mapping[str, Any]
    ) -> Span:
        ctx = trace.set_span_in_context(parent) if parent is not None else None
        return self.tracer.start_span(name, context=ctx, kind=kind, attributes=dict(attributes))

    @staticmethod
    def inject_headers(span: Span | None) -> dict[str, str]:
        """W3C `traceparent`/`tracestate` for `span` (or the current context) as AMQP headers."""
        carrier: dict[str, str] = {}
        ctx = trace.set_span_in_context(span) if span is not None else None
        inject(carrier, context=ctx)
        return carrier

    @staticmethod
    def extract_context(headers: Mapping[str, Any] | None) -> otel_context.Context | None:
        if not headers:
            return None
        carrier = {
            k: v.decode() if isinstance(v, bytes) else str(v)
            for k, v in headers.items()
            if k in ("traceparent", "tracestate")
        }
        return extract(carrier) if carrier else None

    @classmethod
    def reply_headers(cls, command_headers: Mapping[str, Any] | None) -> dict[str, str]:
        """Trace headers for a reply outside any call: the command's trace if it sent one, else a new one."""
        ctx = cls.extract_context(command_headers)
        span = trace.get_current_span(ctx) if ctx is not None else trace.INVALID_SPAN
        return cls.inject_headers(span if span.get_span_context().is_valid else untraced_span())

    @staticmethod
    def end(span: Span, error: str | None = None) -> None:
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end()


def messaging_attributes(
    operation: str,
    exchange: str,
    routing_key: str,
    message_id: str | None = None,
) -> dict[str, Any]:
    """Messaging semantic conventions for RabbitMQ; the session-bearing routing key is an attribute only."""
    attributes: dict[str, Any] = {
        "messaging.system": "rabbitmq",
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
        "messaging.destination.name": exchange or "amq.default",
        "messaging.rabbitmq.destination.routing_key": routing_key,
    }
    if message_id:
        attributes["messaging.message.id"] = message_id
    return attributes


def untraced_span() -> Span:
    """A span that records nothing but carries a fresh, unsampled W3C trace id and span id."""
    return NonRecordingSpan(
        SpanContext(
            trace_id=random.getrandbits(128) or 1,
            span_id=random.getrandbits(64) or 1,
            is_remote=False,
            trace_flags=TraceFlags(TraceFlags.DEFAULT),
        )
    )
