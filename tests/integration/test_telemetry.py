"""Traces and metrics of a whole call, in memory and over the wire to a real OTLP receiver."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from bridge.audio.signal import tone
from bridge.config import load_settings
from bridge.service import Service
from bridge.telemetry import Telemetry
from bridge.tools.voicepeer import VoicePeer
from tests.support.amqp import Agent
from tests.support.polling import until
from tests.support.process import bridge_process, free_port

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_PARENT = "00f067aa0ba902b7"
AGENT_TRACE = "0af7651916cd43dd8448eb211c80319c"


@pytest.fixture
async def traced(prefix: str, amqp_url: str):  # type: ignore[no-untyped-def]
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    telemetry = Telemetry(tracer=provider.get_tracer("test"), meter=meters.get_meter("test"))
    settings = load_settings(port=0, exchange_prefix=prefix, amqp_url=amqp_url)
    service = Service(settings, telemetry=telemetry)
    await service.start()
    yield service, exporter, reader
    await service.shutdown()


def by_name(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def metric_points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    points: dict[str, list[Any]] = {}
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points.setdefault(metric.name, []).extend(metric.data.data_points)
    return points


async def test_span_tree_of_a_call_and_trace_join_with_a_consumer(traced, agent: Agent, prefix: str) -> None:
    service, exporter, reader = traced
    traceparent = f"00-{CALLER_TRACE}-{CALLER_PARENT}-01"
    voice = VoicePeer(
        f"ws://127.0.0.1:{service.server.port}/", session_id="traced", headers={"traceparent": traceparent}
    )
    await voice.connect()
    await voice.initialize()
    await agent.wait_event("session.started", "traced")
    await voice.send_audio(tone(440, 200, 8000))
    await voice.dtmf("4")
    await agent.wait_event("dtmf", "traced")
    # the consumer's own trace: a command carrying its traceparent
    assert agent.channel is not None
    import aio_pika
    import msgpack

    exchange = await agent.channel.get_exchange(f"{prefix}.commands", ensure=False)
    assert agent._reply_queue is not None
    await exchange.publish(
        aio_pika.Message(
            msgpack.packb({"type": "request", "method": "ping", "params": {"t0": 1700000000000}}),
            headers={"traceparent": f"00-{AGENT_TRACE}-b7ad6b7169203331-01"},
            correlation_id="traced-ping",
            reply_to=agent._reply_queue.name,
        ),
        routing_key="traced",
    )
    await agent.wait_for(lambda: agent.replies.get("traced-ping"))
    # audio commands: covered by metrics, no span ... unless one fails
    for audio in (b"\x00" * 320, "not bytes"):
        await exchange.publish(aio_pika.Message(msgpack.packb({"type": "audio", "audio": audio})), "traced")
    await agent.wait_event("command.rejected", "traced")
    await voice.hangup()
    await voice.close()
    await agent.wait_event("session.ended", "traced")
    # The call's span ends once the call is gone, and session.ended's publish span at its confirm: wait
    # for both, the last spans of the call.
    def ended_spans() -> bool:
        finished = list(exporter.get_finished_spans())
        return bool(by_name(finished, "rtvbp.session")) and any(
            s.attributes and s.attributes.get("rtvbp.event") == "session.ended" for s in finished
        )

    await until(ended_spans, 5, "the call's last spans")

    spans = list(exporter.get_finished_spans())
    session = by_name(spans, "rtvbp.session")
    assert len(session) == 1
    root = session[0]
    assert root.kind is SpanKind.SERVER
    assert format(root.context.trace_id, "032x") == CALLER_TRACE  # continues the upgrade's traceparent
    assert root.parent is not None and format(root.parent.span_id, "016x") == CALLER_PARENT
    assert root.attributes is not None
    assert root.attributes["rtvbp.session_id"] == "traced" and root.attributes["rtvbp.end_reason"] == "hangup"
    children = {s.name for s in spans if s.parent is not None and s.parent.span_id == root.context.span_id}
    assert {"rtvbp session.initialize", "rtvbp session.terminate", f"publish {prefix}.events"} <= children
    publishes = by_name(spans, f"publish {prefix}.events")
    # one span per control message and none per audio chunk
    assert sorted(s.attributes["rtvbp.event"] for s in publishes if s.attributes) == sorted(
        ["session.started", "session.updated", "dtmf", "command.rejected", "call.hangup", "session.ended"]
    )
    assert all(s.kind is SpanKind.PRODUCER for s in publishes)
    assert all("traced" not in s.name for s in spans)  # no session ids in span names
    assert publishes[0].attributes is not None
    assert publishes[0].attributes["messaging.system"] == "rabbitmq"
    # the command's span joins the consumer's trace; the voice request and the reply hang under it
    process = by_name(spans, f"process {prefix}.commands")
    assert [s.attributes["rtvbp.command"] for s in process if s.attributes] == ["request", "audio"]
    assert process[1].status.status_code is StatusCode.ERROR  # the bad audio command
    assert format(process[0].context.trace_id, "032x") == AGENT_TRACE
    assert process[0].links and process[0].links[0].context.span_id == root.context.span_id
    ping = by_name(spans, "rtvbp ping")
    assert ping[0].kind is SpanKind.CLIENT and ping[0].parent is not None
    assert ping[0].parent.span_id == process[0].context.span_id
    reply = by_name(spans, "publish amq.default")
    assert reply and reply[0].parent is not None and reply[0].parent.span_id == process[0].context.span_id
    # W3C context in the AMQP headers of upstream messages, the call's trace
    for received in agent.events + agent.audio:
        header = received.message.headers["traceparent"]
        assert isinstance(header, str) and header.split("-")[1] == CALLER_TRACE
    # metrics
    points = metric_points(reader)
    assert sum(p.value for p in points["rtvbp.sessions.started"]) == 1
    ended = {tuple(p.attributes.items()): p.value for p in points["rtvbp.sessions.ended"]}
    assert ended == {(("reason", "hangup"),): 1}
    audio_bytes = {p.attributes["direction"]: p.value for p in points["rtvbp.audio.bytes"]}
    assert audio_bytes["in"] == 3200
    methods = {
        (p.attributes["method"], p.attributes["direction"], p.attributes["outcome"])
        for p in points["rtvbp.request.duration"]
    }
    assert {
        ("session.initialize", "in", "ok"),
        ("ping", "out", "ok"),
        ("session.terminate", "in", "ok"),
    } <= methods


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.lock = threading.Lock()

    def Export(self, request: Any, context: Any) -> Any:
        with self.lock:
            for resource in request.resource_spans:
                for scope in resource.scope_spans:
                    self.spans.extend(scope.spans)
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
def otlp_receiver() -> Iterator[tuple[Receiver, int]]:
    receiver = Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    yield receiver, port
    server.stop(0)


async def test_spans_reach_a_real_otlp_receiver_and_metrics_are_scraped(
    otlp_receiver: tuple[Receiver, int], prefix: str, tmp_path: Path
) -> None:
    receiver, port = otlp_receiver
    env = {
        "BRIDGE_EXCHANGE_PREFIX": prefix,
        "BRIDGE_METRICS_ENABLED": "true",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_SERVICE_NAME": "bridge-under-test",
    }
    with bridge_process(env, tmp_path) as bridge:
        voice = VoicePeer(bridge.ws_url, session_id="otlp")
        await voice.connect()
        await voice.initialize()
        pcm = tone(440, 100, 8000)
        await voice.send_audio(pcm)
        await voice.hangup()
        await voice.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with receiver.lock:
                names = {s.name for s in receiver.spans}
            if "rtvbp.session" in names:
                break
            await asyncio.sleep(0.1)
        assert {"rtvbp.session", "rtvbp session.initialize", f"publish {prefix}.events"} <= names
        metrics_text = await asyncio.to_thread(
            lambda: (
                urllib.request.urlopen(f"http://127.0.0.1:{bridge.port}/metrics", timeout=5).read().decode()
            )
        )
        samples = {}
        for line in metrics_text.splitlines():
            if line.startswith("rtvbp_"):
                name, _, value = line.rpartition(" ")
                samples[name.split("{")[0] + ("{in}" if 'direction="in"' in name else "")] = float(value)
        assert samples["rtvbp_sessions_started_total"] == 1
        assert samples["rtvbp_audio_bytes_total{in}"] == len(pcm)
        assert samples["rtvbp_sessions_active"] == 0
        bridge.terminate()
        assert bridge.process.wait(15) == 0


async def test_json_logs_carry_session_and_trace_ids_and_no_credentials(prefix: str, tmp_path: Path) -> None:
    env = {
        "BRIDGE_EXCHANGE_PREFIX": prefix,
        "BRIDGE_LOG_FORMAT": "json",
        "BRIDGE_LOG_LEVEL": "DEBUG",
        "BRIDGE_AUTH_MODE": "token",
        "BRIDGE_AUTH_TOKENS": "very-secret-token-value",
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
    }
    with bridge_process(env, tmp_path) as bridge:
        voice = VoicePeer(
            bridge.ws_url, session_id="logs", headers={"Authorization": "Bearer very-secret-token-value"}
        )
        await voice.connect()
        await voice.initialize()
        await voice.ws.send("{not json")  # type: ignore[union-attr]  # logged at debug as a violation
        await voice.hangup()
        await voice.close()
        wrong = VoicePeer(bridge.ws_url, headers={"Authorization": "Bearer wrong-secret-guess"})
        with pytest.raises(Exception):  # noqa: B017
            await wrong.connect()
        bridge.terminate()
        assert bridge.process.wait(15) == 0
        text = bridge.log()
    assert "very-secret-token-value" not in text and "wrong-secret-guess" not in text
    records = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # the console span exporter's pretty-printed spans share stdout
        if isinstance(record, dict) and "level" in record:
            records.append(record)
    assert records and all({"ts", "level", "logger", "message"} <= set(r) for r in records)
    violation = [r for r in records if "protocol violation" in r["message"]]
    assert violation, records
    assert violation[0]["session_id"] == "logs"
    assert len(violation[0]["trace_id"]) == 32 and len(violation[0]["span_id"]) == 16
    assert any("admission refused: bad_token" in r["message"] for r in records)
