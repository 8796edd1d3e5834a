"""Requests: outbound waiters settle exactly once, and every request both ways gets a span and a sample."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from bridge.protocol.session import Answered, RequestSettled
from bridge.server.requests import Requests
from bridge.telemetry import Telemetry


@dataclass
class Recorded:
    telemetry: Telemetry
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def durations(self) -> list[tuple[dict[str, Any], float]]:
        """(attributes, sum) of each rtvbp.request.duration series."""
        data = self.metrics.get_metrics_data()
        assert data is not None
        return [
            (dict(point.attributes or {}), point.sum)
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == "rtvbp.request.duration"
            for point in metric.data.data_points
        ]


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    spans = InMemorySpanExporter()
    tracing = TracerProvider()
    tracing.add_span_processor(SimpleSpanProcessor(spans))
    metrics = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[metrics])
    yield Recorded(
        Telemetry(tracer=tracing.get_tracer("test"), meter=meters.get_meter("test")), spans, metrics
    )
    tracing.shutdown()
    meters.shutdown()


async def test_a_request_is_sent_once_and_settles_with_its_span_and_duration(recorded: Recorded) -> None:
    requests = Requests(recorded.telemetry)
    parent = recorded.telemetry.tracer.start_span("call")
    sent: list[str] = []
    waiting = asyncio.create_task(requests.send("r-1", "ping", parent, lambda: sent.append("r-1")))
    await asyncio.sleep(0)
    assert sent == ["r-1"] and not waiting.done()
    settled = RequestSettled("r-1", "ping", ok=True, result={"t1": 2})
    requests.settle(settled)
    assert await asyncio.wait_for(waiting, 1) is settled
    (span,) = recorded.finished()
    assert span.name == "rtvbp ping" and span.kind is SpanKind.CLIENT
    assert span.parent is not None and span.parent.span_id == parent.get_span_context().span_id
    assert span.attributes is not None and span.attributes["rtvbp.outcome"] == "ok"
    assert span.status.status_code is StatusCode.UNSET
    ((attributes, _),) = recorded.durations()
    assert attributes == {"method": "ping", "direction": "out", "outcome": "ok"}


async def test_an_error_settlement_marks_the_span_and_the_outcome(recorded: Recorded) -> None:
    requests = Requests(recorded.telemetry)
    waiting = asyncio.create_task(requests.send("r-2", "audio.buffer.clear", None, lambda: None))
    await asyncio.sleep(0)
    requests.settle(RequestSettled("r-2", "audio.buffer.clear", ok=False, code=408, message="timed out"))
    assert (await waiting).code == 408
    (span,) = recorded.finished()
    assert span.status.status_code is StatusCode.ERROR and span.status.description == "408 timed out"
    assert [a["outcome"] for a, _ in recorded.durations()] == ["408"]


async def test_settling_an_unknown_or_abandoned_request_is_harmless(recorded: Recorded) -> None:
    requests = Requests(recorded.telemetry)
    requests.settle(RequestSettled("nobody", "ping", ok=True))  # never sent (or settled already)
    waiting = asyncio.create_task(requests.send("r-3", "ping", None, lambda: None))
    await asyncio.sleep(0)
    waiting.cancel()  # the bus side gave up on it
    await asyncio.gather(waiting, return_exceptions=True)
    requests.settle(RequestSettled("r-3", "ping", ok=True))
    (span,) = recorded.finished()
    assert span.status.description == "cancelled"
    assert recorded.durations() == []  # no sample for a request nobody waited out


async def test_answered_requests_get_a_server_span_and_initialize_counts_its_wait(recorded: Recorded) -> None:
    requests = Requests(recorded.telemetry)
    requests.initialize_started(time.monotonic() - 0.25)  # the bus side took 250 ms to take the call
    requests.answered(Answered("session.initialize", 0), None)
    requests.answered(Answered("ping", 0), None)
    requests.answered(Answered("session.update", 400), None)
    spans = {span.name: span for span in recorded.finished()}
    assert all(span.kind is SpanKind.SERVER for span in spans.values())
    assert spans["rtvbp session.update"].status.status_code is StatusCode.ERROR
    durations = {a["method"]: (a["outcome"], total) for a, total in recorded.durations()}
    assert durations["session.initialize"][0] == "ok" and durations["session.initialize"][1] >= 0.25
    assert durations["ping"][0] == "ok" and durations["ping"][1] < 0.05
    assert durations["session.update"][0] == "400"
