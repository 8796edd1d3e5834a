"""What one session publishes besides audio: its upstream events (one `seq`) and replies to commands.

Every message carries the session id and the trace context of its PRODUCER span; spans are named after
the exchange (low cardinality), the session-bearing routing key is only an attribute.
"""

from __future__ import annotations

import asyncio
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind

from bridge.broker import messages
from bridge.broker.client import BrokerClient
from bridge.broker.messages import Incoming
from bridge.broker.publisher import Outgoing
from bridge.telemetry import Telemetry, messaging_attributes


class SessionOutbox:
    def __init__(
        self, broker: BrokerClient, telemetry: Telemetry, session_id: str, key: str, call_span: Span | None
    ) -> None:
        self.broker = broker
        self.telemetry = telemetry
        self.session_id = session_id
        self.key = key
        self.call_span = call_span
        self.next_seq = 0  # also the count of events published so far
        # Session id and the call span's context: the headers of every audio chunk, built once.
        self.audio_headers = self.headers(call_span)

    def event(self, event_type: str, data: Any, confirm: bool = False) -> asyncio.Future[None] | None:
        """Publish an event behind all earlier ones; with `confirm`, returns a future of the broker's ack."""
        seq = self.next_seq
        self.next_seq += 1
        body = messages.event_body(event_type, self.session_id, seq, data)
        exchange, routing_key = self.broker.topology.events, f"{self.key}.{event_type}"
        span = self.producer_span(exchange, routing_key, self.call_span)
        span.set_attribute("rtvbp.event", event_type)
        props = messages.properties(body_type=event_type, headers=self.headers(span))
        done: asyncio.Future[None] | None = asyncio.get_running_loop().create_future() if confirm else None
        self.broker.control.submit(
            Outgoing(exchange, routing_key, messages.pack(body), props, done, on_sent=lambda _: span.end())
        )
        return done

    def gap(self, data: dict[str, Any]) -> None:
        self.event("audio.gap", data)

    def reply(self, incoming: Incoming, body: dict[str, Any], parent: Span | None) -> None:
        """Answer a command on its `reply_to` with its `correlation_id` (nothing when it asked for none)."""
        if not incoming.reply_to:
            return
        if parent is None or not parent.get_span_context().is_valid:
            parent = self._reply_trace(incoming)  # audio, tracing off, or failed before its span
        span = self.producer_span("", incoming.reply_to, parent)
        traced = span if span.get_span_context().is_valid else parent  # no SDK: the parent's own context
        props = messages.properties(
            body_type="reply", headers=self.headers(traced), correlation_id=incoming.correlation_id
        )
        self.broker.control.submit(
            Outgoing("", incoming.reply_to, messages.pack(body), props, on_sent=lambda _: span.end())
        )

    def _reply_trace(self, incoming: Incoming) -> Span | None:
        """The trace a reply continues: the command's when it carried one, else the call's."""
        context = self.telemetry.extract_context(incoming.headers)
        if context is not None:
            remote = trace.get_current_span(context)
            if remote.get_span_context().is_valid:
                return remote
        return self.call_span

    def headers(self, span: Span | None) -> dict[str, Any]:
        return {"session_id": self.session_id, **self.telemetry.inject_headers(span)}

    def producer_span(self, exchange: str, routing_key: str, parent: Span | None) -> Span:
        return self.telemetry.child_span(
            f"publish {exchange or 'amq.default'}",
            parent,
            SpanKind.PRODUCER,
            messaging_attributes("publish", exchange, routing_key),
        )
