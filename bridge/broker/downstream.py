"""A session's commands, executed against its call: audio, marks, barge-in, requests and events.

Everything up to a command's first await runs in delivery order (audio, mark, the local part of clear),
so a consumer's sequence of commands reaches the caller in the order it was sent. A command that fails
never fails the call: it is answered with its error if it asked for a reply, else reported upstream as
`command.rejected`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind

from bridge.broker import messages
from bridge.broker.commands import (
    AudioCommand,
    BadCommand,
    ClearCommand,
    Command,
    EventCommand,
    MarkCommand,
    RequestCommand,
    decode_command,
)
from bridge.broker.messages import Incoming
from bridge.broker.outbox import SessionOutbox
from bridge.compat.aiormq import DeliveredMessage
from bridge.port import CallControl, CommandError
from bridge.telemetry import Telemetry, messaging_attributes

log = logging.getLogger("bridge.link")


class CommandHandler:
    def __init__(
        self,
        call: CallControl,
        outbox: SessionOutbox,
        telemetry: Telemetry,
        *,
        commands_exchange: str,
        session_codec: Mapping[str, Any],
        block_align: int,
        max_command_bytes: int,
    ) -> None:
        self.call = call
        self.outbox = outbox
        self.telemetry = telemetry
        self.commands_exchange = commands_exchange
        self.session_codec = session_codec
        self.block_align = block_align
        self.max_command_bytes = max_command_bytes
        self.received = 0
        self.rejected = 0

    async def on_delivery(self, delivered: DeliveredMessage) -> None:
        await self.handle(Incoming.from_delivery(delivered))

    async def handle(self, incoming: Incoming) -> None:
        self.received += 1
        command_type = "unknown"
        # Control commands get a CONSUMER span; audio (ten a second per call) is covered by metrics, and
        # gets a span only when it fails.
        span: Span = trace.INVALID_SPAN
        error: str | None = None
        try:
            command = decode_command(
                incoming.body, self.max_command_bytes, self.session_codec, self.block_align
            )
            command_type = command.type
            if command_type != "audio":
                span = self._consumer_span(incoming, command_type)
            result = self._execute_now(command)
            if result is None:
                result = await self._execute_async(command, span)
            self.outbox.reply(incoming, messages.reply_ok(self.outbox.session_id, result), span)
        except Exception as exc:
            if isinstance(exc, CommandError):
                if isinstance(exc, BadCommand) and command_type == "unknown":
                    command_type = exc.command_type
                code, text, error = exc.code, exc.message, f"{exc.code} {exc.message}"
            else:
                log.exception("command failed")
                code, text, error = 500, f"internal error: {type(exc).__name__}", type(exc).__name__
            if span is trace.INVALID_SPAN:  # not created yet (audio, or undecodable): failures are traced
                span = self._consumer_span(incoming, command_type)
            self._reject(incoming, command_type, code, text, span)
        finally:
            self.telemetry.end(span, error)

    def _execute_now(self, command: Command) -> dict[str, Any] | None:
        """The synchronous commands; None for those that must wait (clear, request)."""
        call = self.call
        if isinstance(command, AudioCommand):
            queued = call.enqueue_audio(command.audio)
            # queued_ms: the v1 name of backlog_ms, kept until v2
            return {
                "queued_bytes": queued.queued_bytes,
                "backlog_ms": queued.backlog_ms,
                "queued_ms": queued.backlog_ms,
            }
        if isinstance(command, MarkCommand):
            call.add_mark(command.name)
            return {"name": command.name}
        if isinstance(command, EventCommand):
            call.send_event(command.event, command.data)
            return {}
        return None

    async def _execute_async(self, command: Command, span: Span) -> Any:
        if isinstance(command, ClearCommand):
            cleared = await self.call.clear()
            return {
                "bridge_bytes": cleared.bridge.bytes_dropped,
                "voice_bytes": cleared.voice_bytes,
                "marks_dropped": list(cleared.bridge.marks_dropped),
            }
        assert isinstance(command, RequestCommand)
        settled = await self.call.request(command.method, command.params, parent=span)
        if not settled.ok:
            raise CommandError(settled.code, settled.message)
        return settled.result

    def _consumer_span(self, incoming: Incoming, command_type: str) -> Span:
        """Continues the consumer's trace when the command carries a traceparent; linked to the call."""
        if not self.telemetry.tracing:
            return trace.INVALID_SPAN  # no SDK: a span would record nothing anyway
        session_span = self.call.span
        parent_ctx = self.telemetry.extract_context(incoming.headers)
        if parent_ctx is None and session_span is not None:
            parent_ctx = trace.set_span_in_context(session_span)
        links = [Link(session_span.get_span_context())] if session_span is not None else []
        attributes = messaging_attributes(
            "process", self.commands_exchange, incoming.routing_key or "", incoming.message_id
        )
        attributes["rtvbp.command"] = command_type
        return self.telemetry.tracer.start_span(
            f"process {self.commands_exchange}",
            context=parent_ctx,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            links=links,
        )

    def _reject(self, incoming: Incoming, command_type: str, code: int, text: str, span: Span) -> None:
        self.rejected += 1
        if incoming.reply_to:
            self.outbox.reply(incoming, messages.reply_error(self.outbox.session_id, code, text), span)
            return
        data: dict[str, Any] = {"command_type": command_type, "code": code, "message": text}
        if incoming.correlation_id:
            data["correlation_id"] = incoming.correlation_id
        self.outbox.event("command.rejected", data)
