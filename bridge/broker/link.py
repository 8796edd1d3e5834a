"""One call bridged onto RabbitMQ: the `CallApp` the WebSocket side talks to.

Upstream: control events and re-chunked caller audio are published keyed by session, with per-session
`seq`. Downstream: the session's exclusive command queue (also the ownership lock) feeds audio, marks,
barge-in, requests and events back into the call, answering to `reply_to`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import aiormq
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind

from bridge.audio.chunker import Chunker
from bridge.audio.format import AudioFormat
from bridge.audio.playout import MarkReached
from bridge.broker import messages
from bridge.broker.client import BrokerClient
from bridge.broker.messages import BadCommand, Command
from bridge.broker.names import session_key
from bridge.broker.publisher import Outgoing
from bridge.protocol.session import InitializeRequested, VoiceEvent
from bridge.server.call import Call, CallRefused, CallSummary, CommandError
from bridge.telemetry import Telemetry, messaging_attributes

log = logging.getLogger("bridge.link")


@dataclass(frozen=True, slots=True)
class LinkSettings:
    chunk_ms: int = 100
    audio_backlog_ms: int = 10_000
    mirror_out: bool = False
    publish_timeout_s: float = 2.0
    max_command_bytes: int = 4 * 1024 * 1024


class LocalOwnership:
    """Session keys held by this process: an exclusive queue does not lock against its own connection."""

    def __init__(self) -> None:
        self._held: set[str] = set()

    def claim(self, key: str) -> bool:
        if key in self._held:
            return False
        self._held.add(key)
        return True

    def release(self, key: str) -> None:
        self._held.discard(key)


class SessionLink:
    def __init__(
        self,
        broker: BrokerClient,
        ownership: LocalOwnership,
        settings: LinkSettings,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.broker = broker
        self.ownership = ownership
        self.settings = settings
        self.telemetry = telemetry or Telemetry()
        self._session_trace: dict[str, str] = {}  # the call span's context, on every audio message
        self.call: Call | None = None
        self.session_id = ""
        self.key = ""
        self.codec: dict[str, Any] = {}
        self._seq = 0
        self._fmt: AudioFormat | None = None
        self._chunker: Chunker | None = None
        self._out_chunker: Chunker | None = None
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._owned = False
        self._started = False
        self._backlog_bytes = 0
        self._backlog_limit = 0
        self._gap: dict[str, int] = {}
        self.dropped_in_bytes = 0
        self.dropped_in_chunks = 0
        self.commands_received = 0
        self.commands_rejected = 0
        self._tasks: set[asyncio.Task[None]] = set()

    # ---- CallApp: upstream ----------------------------------------------------------------------------

    async def start(self, call: Call, init: InitializeRequested) -> None:
        self.call = call
        self._session_trace = self.telemetry.inject_headers(call.span)
        self.session_id = init.params.call.session_id
        self.key = session_key(self.session_id)
        if not self.broker.ready():
            raise CallRefused(503, "broker unavailable: cannot bridge this call")
        if not self.ownership.claim(self.key):
            raise CallRefused(409, f"session {self.session_id} is already active on this bridge")
        self._owned = True
        codec = init.codec
        self.codec = {**codec.to_wire(), "endianness": "little"}
        fmt = AudioFormat.from_codec(codec.name, codec.sample_rate, codec.bit_depth, codec.channels)
        self._fmt = fmt
        self._chunker = Chunker(fmt, self.settings.chunk_ms)
        if self.settings.mirror_out:
            self._out_chunker = Chunker(fmt, self.settings.chunk_ms)
        self._backlog_limit = fmt.bytes_for_ms(self.settings.audio_backlog_ms)
        await self._claim_command_queue()
        t = self.broker.topology
        started = {
            "application": init.params.application.to_wire(),
            "call": init.params.call.to_wire(),
            "audio_codec_offerings": [c.to_wire() for c in init.params.audio_codec_offerings],
            "audio_codec": self.codec,
            "metadata": init.params.metadata,
            "instance": self.broker.instance_id,
            "commands": {"exchange": t.commands, "routing_key": self.key},
            "audio": {
                "exchange": t.audio,
                "routing_key": f"{self.key}.in",
                "chunk_ms": self.settings.chunk_ms,
            },
        }
        confirmed = self._publish_event("session.started", started, confirm=True)
        assert confirmed is not None
        try:
            await asyncio.wait_for(asyncio.shield(confirmed), self.settings.publish_timeout_s)
        except (TimeoutError, Exception) as exc:
            confirmed.cancel()  # withdraws it if still queued: nobody will hear of a refused call
            await self._release()
            raise CallRefused(503, f"broker did not confirm session.started: {type(exc).__name__}") from None
        self._started = True
        self.telemetry.sessions_started.add(1)

    def voice_event(self, event: VoiceEvent) -> None:
        if self._started:
            self._publish_event(event.name, event.raw)

    def audio_in(self, data: bytes) -> None:
        if self._chunker is None:
            return
        for chunk in self._chunker.push(data):
            self._publish_audio("in", chunk.seq, chunk.ts_ms, chunk.data)

    def audio_out(self, frame: bytes) -> None:
        if self._out_chunker is not None:
            for chunk in self._out_chunker.push(frame):
                self._publish_audio("out", chunk.seq, chunk.ts_ms, chunk.data)

    def mark_reached(self, mark: MarkReached) -> None:
        self._publish_event("playout.mark", {"name": mark.name, "position_ms": mark.position_ms})

    async def end(self, summary: CallSummary) -> None:
        try:
            if self._started:
                for chunker, direction in ((self._chunker, "in"), (self._out_chunker, "out")):
                    last = chunker.flush() if chunker is not None else None
                    if last is not None:
                        self._publish_audio(direction, last.seq, last.ts_ms, last.data)
                self._report_gap()
                for task in list(self._tasks):
                    task.cancel()
                self._publish_event("session.ended", self._ended_data(summary))
        finally:
            await self._release()

    def _ended_data(self, summary: CallSummary) -> dict[str, Any]:
        s, p = summary.stats, summary.protocol
        return {
            "reason": summary.reason,
            "detail": summary.detail,
            "duration_ms": summary.duration_ms,
            "counters": {
                "frames_in": s.frames_in,
                "bytes_in": s.bytes_in,
                "chunks_out": self._chunker.chunks_out if self._chunker else 0,
                "frames_out": s.frames_out,
                "bytes_out": s.bytes_out,
                "dropped_in_bytes": self.dropped_in_bytes,
                "dropped_in_chunks": self.dropped_in_chunks,
                "dropped_out_bytes": s.dropped_out_bytes,
                "malformed_frames": p.malformed_frames,
                "early_binary_frames": p.early_binary_frames,
                "events_published": self._seq + 1,
                "commands_received": self.commands_received,
                "commands_rejected": self.commands_rejected,
            },
        }

    # ---- publishing -----------------------------------------------------------------------------------

    def _publish_event(
        self, event_type: str, data: Any, confirm: bool = False
    ) -> asyncio.Future[None] | None:
        seq = self._seq
        self._seq += 1
        body = messages.event_body(event_type, self.session_id, seq, data)
        exchange, routing_key = self.broker.topology.events, f"{self.key}.{event_type}"
        span = self._producer_span(exchange, routing_key, self.call.span if self.call else None)
        span.set_attribute("rtvbp.event", event_type)
        msg = messages.message(
            body,
            body_type=event_type,
            session_id=self.session_id,
            headers=self.telemetry.inject_headers(span),
        )
        done: asyncio.Future[None] | None = asyncio.get_running_loop().create_future() if confirm else None
        self.broker.control.submit(Outgoing(exchange, routing_key, msg, done, on_sent=lambda _: span.end()))
        return done

    def _producer_span(self, exchange: str, routing_key: str, parent: Span | None) -> Span:
        # Named after the exchange (low cardinality); the session-bearing key is only an attribute.
        return self.telemetry.child_span(
            f"publish {exchange or 'amq.default'}",
            parent,
            SpanKind.PRODUCER,
            messaging_attributes("publish", exchange, routing_key),
        )

    def _publish_audio(self, direction: str, seq: int, ts_ms: int, audio: bytes) -> None:
        if self._backlog_bytes + len(audio) > self._backlog_limit:
            # The broker is not keeping up (or away): drop this chunk, count it, report it as a gap.
            self.dropped_in_bytes += len(audio)
            self.dropped_in_chunks += 1
            gap = self._gap
            gap.setdefault("first_seq", seq)
            gap["last_seq"] = seq
            gap["dropped_chunks"] = gap.get("dropped_chunks", 0) + 1
            gap["dropped_bytes"] = gap.get("dropped_bytes", 0) + len(audio)
            return
        if self._gap and direction == "in":
            self._report_gap()
        self._backlog_bytes += len(audio)
        body = messages.audio_body(self.session_id, direction, seq, ts_ms, self.codec, audio)
        msg = messages.message(
            body, body_type="audio", session_id=self.session_id, headers=self._session_trace
        )
        size = len(audio)
        latency = self.telemetry.chunk_publish_latency

        def sent(seconds: float) -> None:
            self._backlog_bytes -= size
            latency.record(seconds)

        self.broker.audio.submit(
            Outgoing(self.broker.topology.audio, f"{self.key}.{direction}", msg, on_sent=sent)
        )

    def _report_gap(self) -> None:
        if not self._gap:
            return
        gap, self._gap = self._gap, {}
        assert self._fmt is not None
        bytes_per_ms = self._fmt.bytes_for_ms(20) / 20
        self._publish_event(
            "audio.gap",
            {
                "direction": "in",
                "reason": "buffer_overflow" if self.broker.ready() else "broker_unavailable",
                "dropped_chunks": gap["dropped_chunks"],
                "dropped_bytes": gap["dropped_bytes"],
                "dropped_ms": int(gap["dropped_bytes"] / bytes_per_ms),
                "first_seq": gap["first_seq"],
                "last_seq": gap["last_seq"],
            },
        )

    def _reply(self, incoming: AbstractIncomingMessage, body: dict[str, Any], parent: Span | None) -> None:
        if not incoming.reply_to:
            return
        span = self._producer_span("", incoming.reply_to, parent)
        msg = messages.message(
            body,
            body_type="reply",
            session_id=self.session_id,
            correlation_id=incoming.correlation_id,
            headers=self.telemetry.inject_headers(span),
        )
        self.broker.control.submit(Outgoing("", incoming.reply_to, msg, on_sent=lambda _: span.end()))

    # ---- downstream -----------------------------------------------------------------------------------

    async def _claim_command_queue(self) -> None:
        try:
            channel = await self.broker.session_channel()
        except ConnectionError:
            await self._release()
            raise CallRefused(503, "broker unavailable: cannot bridge this call") from None
        self._channel = channel
        try:
            queue = await channel.declare_queue(
                self.broker.topology.session_queue(self.key), exclusive=True, auto_delete=True
            )
            await queue.bind(self.broker.topology.commands, routing_key=self.key)
            await queue.consume(self._on_command, no_ack=True, exclusive=True)
        except aiormq.exceptions.ChannelLockedResource:
            await self._release()
            raise CallRefused(409, f"session {self.session_id} is already active on another bridge") from None
        except Exception as exc:
            await self._release()
            raise CallRefused(
                503, f"cannot claim the session's command queue: {type(exc).__name__}"
            ) from None
        self._queue = queue

    async def _release(self) -> None:
        if self._channel is not None:
            channel, self._channel = self._channel, None
            with contextlib.suppress(Exception):
                await channel.close()
        if self._owned:
            self._owned = False
            self.ownership.release(self.key)

    async def _on_command(self, incoming: AbstractIncomingMessage) -> None:
        self.commands_received += 1
        command_type = "unknown"
        span = self._consumer_span(incoming)
        error: str | None = None
        try:
            command = messages.decode_command(incoming.body, self.settings.max_command_bytes)
            command_type = command.type
            span.set_attribute("rtvbp.command", command_type)
            # Everything up to the first await runs in delivery order (audio, mark, the local part of clear).
            result = self._execute_now(command)
            if result is None:
                result = await self._execute_async(command, span)
            self._reply(incoming, messages.reply_ok(self.session_id, result), span)
        except (BadCommand, CommandError) as exc:
            if isinstance(exc, BadCommand):
                command_type = exc.command_type if command_type == "unknown" else command_type
            error = f"{exc.code} {exc}"
            self._reject(incoming, command_type, exc.code, str(exc), span)
        except Exception as exc:
            log.exception("command failed")
            error = type(exc).__name__
            self._reject(incoming, command_type, 500, f"internal error: {type(exc).__name__}", span)
        finally:
            self.telemetry.end(span, error)

    def _consumer_span(self, incoming: AbstractIncomingMessage) -> Span:
        """Continues the consumer's trace when the command carries a traceparent; linked to the call."""
        session_span = self.call.span if self.call else None
        parent_ctx = self.telemetry.extract_context(incoming.headers)
        if parent_ctx is None and session_span is not None:
            parent_ctx = trace.set_span_in_context(session_span)
        links = [Link(session_span.get_span_context())] if session_span is not None else []
        attributes = messaging_attributes(
            "process", self.broker.topology.commands, incoming.routing_key or "", incoming.message_id
        )
        return self.telemetry.tracer.start_span(
            f"process {self.broker.topology.commands}",
            context=parent_ctx,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            links=links,
        )

    def _reject(
        self,
        incoming: AbstractIncomingMessage,
        command_type: str,
        code: int,
        text: str,
        span: Span | None = None,
    ) -> None:
        self.commands_rejected += 1
        if incoming.reply_to:
            self._reply(incoming, messages.reply_error(self.session_id, code, text), span)
            return
        data: dict[str, Any] = {"command_type": command_type, "code": code, "message": text}
        if incoming.correlation_id:
            data["correlation_id"] = incoming.correlation_id
        self._publish_event("command.rejected", data)

    def _execute_now(self, command: Command) -> dict[str, Any] | None:
        call = self._require_call()
        body = command.body
        if command.type == "audio":
            audio = body.get("audio")
            if not isinstance(audio, bytes | bytearray) or not audio:
                raise BadCommand(400, "audio command needs non-empty binary 'audio'", "audio")
            self._check_codec(body.get("codec"))
            queued = call.enqueue_audio(bytes(audio))
            playout = call.playout
            assert playout is not None
            return {"queued_bytes": queued, "queued_ms": int(playout.queued_ms)}
        if command.type == "mark":
            name = body.get("name")
            if not isinstance(name, str) or not name:
                raise BadCommand(400, "mark command needs a non-empty string 'name'", "mark")
            call.add_mark(name)
            return {"name": name}
        if command.type == "event":
            event, data = body.get("event"), body.get("data", {})
            if not isinstance(event, str):
                raise BadCommand(400, "event command needs a string 'event'", "event")
            call.send_event(event, {} if data is None else data)
            return {}
        return None

    async def _execute_async(self, command: Command, span: Span | None = None) -> Any:
        call = self._require_call()
        body = command.body
        if command.type == "clear":
            cleared, voice_bytes = await call.clear()
            return {
                "bridge_bytes": cleared.bytes_dropped,
                "voice_bytes": voice_bytes,
                "marks_dropped": list(cleared.marks_dropped),
            }
        method, params = body.get("method"), body.get("params", {})
        if not isinstance(method, str) or not method:
            raise BadCommand(400, "request command needs a string 'method'", "request")
        settled = await call.request(method, {} if params is None else params, parent=span)
        if not settled.ok:
            raise CommandError(settled.code, settled.message)
        return settled.result

    def _check_codec(self, codec: Any) -> None:
        if codec is None:
            return
        if not isinstance(codec, dict):
            raise BadCommand(400, "codec must be a map", "audio")
        for field in ("name", "sample_rate", "channels"):
            if field in codec and codec[field] != self.codec.get(field):
                raise BadCommand(
                    400,
                    f"audio codec {codec.get('id', codec)} does not match the session's {self.codec['id']}",
                    "audio",
                )

    def _require_call(self) -> Call:
        if self.call is None:
            raise CommandError(409, "session not started")
        return self.call
