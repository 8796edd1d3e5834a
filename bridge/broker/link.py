"""One call bridged onto RabbitMQ: the `CallApp` the WebSocket side talks to.

Upstream: control events and re-chunked caller audio are published keyed by session, with per-session
`seq`. Downstream: the session's exclusive command queue (also the ownership lock) feeds audio, marks,
barge-in, requests and events back into the call, answering to `reply_to`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import aiormq
from aio_pika.abc import AbstractQueue, AbstractRobustChannel
from aiormq.abc import DeliveredMessage
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind

from bridge.audio.chunker import Chunker
from bridge.audio.format import AudioFormat
from bridge.audio.playout import MarkReached
from bridge.broker import messages
from bridge.broker.client import BrokerClient
from bridge.broker.messages import BadCommand, Command, Incoming
from bridge.broker.names import session_key
from bridge.broker.publisher import Outgoing
from bridge.protocol.session import CLOSE_INTERNAL, InitializeRequested, VoiceEvent
from bridge.server.call import Call, CallRefused, CallSummary, CommandError
from bridge.telemetry import Telemetry, messaging_attributes

log = logging.getLogger("bridge.link")

# After a broker blip another replica may hold our session's queue; our own dead connection can too,
# until the broker reaps it. Keep trying this long before ending the call as "ownership lost".
RECLAIM_GRACE_S = 3.0
RECLAIM_RETRY_S = 0.25
# Voice events that arrive while the call is being set up (before session.started is submitted) wait;
# a voice has no reason to send many then, so beyond this they are dropped rather than held.
EARLY_EVENTS_MAX = 64


@dataclass(frozen=True, slots=True)
class LinkSettings:
    chunk_ms: int = 100
    audio_backlog_ms: int = 10_000
    mirror_out: bool = False
    publish_timeout_s: float = 1.5
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
        self._audio_headers: dict[str, Any] = {}  # session id + the call span's context, on every chunk
        self.call: Call | None = None
        self.session_id = ""
        self.key = ""
        self.codec: dict[str, Any] = {}
        self._seq = 0
        self._fmt: AudioFormat | None = None
        self._chunker: Chunker | None = None
        self._out_chunker: Chunker | None = None
        self._channel: AbstractRobustChannel | None = None
        self._queue: AbstractQueue | None = None
        self._owned = False
        self._started = False
        self._announced = False
        self._backlog_bytes = 0
        self._backlog_limit = 0
        self._gaps: dict[str, dict[str, Any]] = {}  # per direction, the gap not yet reported
        self.dropped_in_bytes = 0
        self.dropped_in_chunks = 0
        self.commands_received = 0
        self.commands_rejected = 0
        self._reclaim: asyncio.Task[None] | None = None
        self._early_events: list[VoiceEvent] = []

    # ---- CallApp: upstream ----------------------------------------------------------------------------

    async def start(self, call: Call, init: InitializeRequested) -> None:
        self.call = call
        self.session_id = init.params.call.session_id
        self._audio_headers = self._headers(call.span)
        self.key = session_key(self.session_id)
        # Everything below shares one budget, so initialize is answered in time whatever is slow.
        deadline = asyncio.get_running_loop().time() + self.settings.publish_timeout_s
        # A call arriving while this process is still making its first broker connection waits for it
        # (within the budget); once connected, an outage refuses at once.
        if not self.broker.ready() and not await self.broker.wait_connected(self.settings.publish_timeout_s):
            raise CallRefused(503, "broker unavailable: cannot bridge this call")
        if self.broker.blocked:
            # A resource alarm holds every publish: refuse now rather than after the confirm timeout.
            raise CallRefused(503, "broker is blocking publishers (resource alarm): cannot bridge this call")
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
        try:
            await asyncio.wait_for(self._claim_command_queue(), self._left(deadline))
        except TimeoutError:
            await self._release()
            raise CallRefused(503, "broker too slow: the command queue was not ready in time") from None
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
        self._announced = True  # from here on, consumers must also hear how the call ends
        for event in self._early_events:  # what the voice said during set-up, right behind the start
            self._publish_event(event.name, event.raw)
        self._early_events.clear()
        try:
            await asyncio.wait_for(asyncio.shield(confirmed), self._left(deadline))
        except (TimeoutError, Exception) as exc:
            # It cannot be withdrawn once on the wire (a blocked broker takes it later), so consumers
            # would see a call start that never ends: close it for them, in order, right behind it.
            self._announced = False
            self._publish_event(
                "session.ended",
                self._refused_data(
                    f"call refused: broker did not confirm session.started ({type(exc).__name__})"
                ),
            )
            await self._release()
            raise CallRefused(503, f"broker did not confirm session.started: {type(exc).__name__}") from None
        self._started = True
        self.telemetry.sessions_started.add(1)

    @staticmethod
    def _left(deadline: float) -> float:
        return max(0.0, deadline - asyncio.get_running_loop().time())

    def voice_event(self, event: VoiceEvent) -> None:
        if self._started or self._announced:
            # The control publisher keeps order: behind session.started even before it is confirmed.
            self._publish_event(event.name, event.raw)
        elif len(self._early_events) < EARLY_EVENTS_MAX:
            self._early_events.append(event)  # the call is being set up; published once it is announced

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

    def _dropped_in_total(self) -> int:
        return self.dropped_in_bytes + (self._chunker.bytes_discarded if self._chunker else 0)

    async def end(self, summary: CallSummary) -> None:
        # rtvbp.audio.dropped{direction="in"} counts what session.ended reports as dropped_in_bytes.
        self.telemetry.totals.dropped_bytes["in"] += self._dropped_in_total()
        try:
            if self._started:
                for chunker, direction in ((self._chunker, "in"), (self._out_chunker, "out")):
                    last = chunker.flush() if chunker is not None else None
                    if last is not None:
                        self._publish_audio(direction, last.seq, last.ts_ms, last.data)
                self._report_gaps()
                self._publish_event("session.ended", self._ended_data(summary))
            elif self._announced:
                # The voice left while session.started awaited its confirm: close the story anyway.
                self._publish_event("session.ended", self._ended_data(summary))
        finally:
            await self._release()

    def _refused_data(self, detail: str) -> dict[str, Any]:
        assert self.call is not None
        duration_ms = int((time.monotonic() - self.call.started_at) * 1000)
        return self._ended_data(
            CallSummary("error", detail, duration_ms, self.call.stats, self.call.session.counters)
        )

    def _ended_data(self, summary: CallSummary) -> dict[str, Any]:
        s, p = summary.stats, summary.protocol
        caller_chunks = self._chunker.chunks_out if self._chunker else 0
        return {
            "reason": summary.reason,
            "detail": summary.detail,
            "duration_ms": summary.duration_ms,
            "counters": {
                "frames_in": s.frames_in,
                "bytes_in": s.bytes_in,
                "chunks_in": caller_chunks,
                "chunks_out": caller_chunks,  # v1 alias of chunks_in ("out" of the chunker), kept until v2
                "frames_out": s.frames_out,
                "bytes_out": s.bytes_out,
                # Gaps plus a trailing partial sample (unplayable): bytes_in = delivered + dropped_in_bytes.
                "dropped_in_bytes": self._dropped_in_total(),
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
        props = messages.properties(body_type=event_type, headers=self._headers(span))
        done: asyncio.Future[None] | None = asyncio.get_running_loop().create_future() if confirm else None
        self.broker.control.submit(
            Outgoing(exchange, routing_key, messages.pack(body), props, done, on_sent=lambda _: span.end())
        )
        return done

    def _headers(self, span: Span | None) -> dict[str, Any]:
        return {"session_id": self.session_id, **self.telemetry.inject_headers(span)}

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
            if direction == "in":
                self.dropped_in_bytes += len(audio)
                self.dropped_in_chunks += 1
            gap = self._gaps.get(direction)
            if gap is None:
                # Why the gap began: decided now; by the time it is reported the broker may be back.
                away = not self.broker.ready() or self.broker.blocked
                gap = self._gaps[direction] = {
                    "reason": "broker_unavailable" if away else "buffer_overflow",
                    "first_seq": seq,
                    "dropped_chunks": 0,
                    "dropped_bytes": 0,
                }
            gap["last_seq"] = seq
            gap["dropped_chunks"] += 1
            gap["dropped_bytes"] += len(audio)
            return
        if direction in self._gaps:
            self._report_gap(direction)
        self._backlog_bytes += len(audio)
        body = messages.pack(messages.audio_body(self.session_id, direction, seq, ts_ms, self.codec, audio))
        props = messages.properties(body_type="audio", headers=self._audio_headers)
        size = len(audio)
        latency = self.telemetry.chunk_publish_latency

        def sent(seconds: float) -> None:
            self._backlog_bytes -= size
            latency.record(seconds)

        self.broker.audio.submit(
            Outgoing(self.broker.topology.audio, f"{self.key}.{direction}", body, props, on_sent=sent)
        )

    def _report_gaps(self) -> None:
        for direction in list(self._gaps):
            self._report_gap(direction)

    def _report_gap(self, direction: str) -> None:
        gap = self._gaps.pop(direction, None)
        if gap is None:
            return
        assert self._fmt is not None
        bytes_per_ms = self._fmt.bytes_for_ms(20) / 20
        self._publish_event(
            "audio.gap",
            {
                "direction": direction,
                "reason": gap["reason"],
                "dropped_chunks": gap["dropped_chunks"],
                "dropped_bytes": gap["dropped_bytes"],
                "dropped_ms": int(gap["dropped_bytes"] / bytes_per_ms),
                "first_seq": gap["first_seq"],
                "last_seq": gap["last_seq"],
            },
        )

    def _reply(self, incoming: Incoming, body: dict[str, Any], parent: Span | None) -> None:
        if not incoming.reply_to:
            return
        if parent is None or not parent.get_span_context().is_valid:
            parent = self._reply_trace(incoming)  # audio, tracing off, or failed before its span
        span = self._producer_span("", incoming.reply_to, parent)
        traced = span if span.get_span_context().is_valid else parent  # no SDK: the parent's own context
        props = messages.properties(
            body_type="reply", headers=self._headers(traced), correlation_id=incoming.correlation_id
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
        return self.call.span if self.call else None

    # ---- downstream -----------------------------------------------------------------------------------

    async def _claim_command_queue(self) -> None:
        try:
            channel = await self.broker.session_channel()
        except ConnectionError:
            await self._release()
            raise CallRefused(503, "broker unavailable: cannot bridge this call") from None
        self._channel = channel
        try:
            await self._consume_commands(channel)
        except aiormq.exceptions.ChannelLockedResource:
            await self._release()
            raise CallRefused(409, f"session {self.session_id} is already active on another bridge") from None
        except Exception as exc:
            await self._release()
            raise CallRefused(
                503, f"cannot claim the session's command queue: {type(exc).__name__}"
            ) from None
        channel.reopen_callbacks.add(self._on_channel_reopened)

    async def _consume_commands(self, channel: AbstractRobustChannel) -> None:
        """Declare, bind and consume the exclusive command queue (the session's ownership lock).

        Not robust in aio-pika's sense: its automatic restore of a queue another replica took meanwhile
        fails the whole consuming connection (every call loses its commands, forever). The link re-claims
        its queue itself after a reconnect or a broker-side cancel, and ends only its own call if it lost.
        """
        queue = await channel.declare_queue(
            self.broker.topology.session_queue(self.key), exclusive=True, auto_delete=True, robust=False
        )
        await queue.bind(self.broker.topology.commands, routing_key=self.key, robust=False)
        underlay = await channel.get_underlay_channel()
        await underlay.basic_consume(queue.name, self._on_delivery, no_ack=True, exclusive=True)
        underlay.on_consumer_cancel_callbacks.add(self._on_consumer_cancelled)  # e.g. the queue was deleted
        self._queue = queue

    def _on_channel_reopened(self, *_: object) -> None:
        self._start_reclaim("the broker connection was restored")

    def _on_consumer_cancelled(self, *_: object) -> None:
        self._start_reclaim("the broker cancelled the command consumer")

    def _start_reclaim(self, why: str) -> None:
        if self._channel is None or (self._reclaim is not None and not self._reclaim.done()):
            return
        log.warning("re-claiming the command queue: %s", why)
        self._reclaim = asyncio.create_task(self._reclaim_commands())

    async def _reclaim_commands(self) -> None:
        """Take the command queue back; if another bridge holds it beyond a grace, end this call."""
        deadline = asyncio.get_running_loop().time() + RECLAIM_GRACE_S
        while (channel := self._channel) is not None:
            try:
                await self._consume_commands(channel)
                log.info("command queue re-claimed")
                return
            except aiormq.exceptions.ChannelLockedResource:
                # Possibly our own dead connection not yet reaped by the broker: retry within the grace.
                if asyncio.get_running_loop().time() >= deadline:
                    break
            except Exception as exc:  # broker still away: the robust connection will reopen the channel
                log.warning("command queue not re-claimed yet (%s)", type(exc).__name__)
                return
            await asyncio.sleep(RECLAIM_RETRY_S)
        if self._channel is None or self.call is None:
            return
        self._channel.reopen_callbacks.discard(self._on_channel_reopened)
        log.error("session %s is now owned by another bridge: ending this call", self.session_id)
        self.call.end(
            CLOSE_INTERNAL,
            "session ownership lost",
            "error",
            "ownership lost: another bridge claimed the session's command queue during a broker outage",
        )

    async def _release(self) -> None:
        if self._reclaim is not None:
            self._reclaim.cancel()
        if self._channel is not None:
            channel, self._channel = self._channel, None
            with contextlib.suppress(Exception):
                await channel.close()
        if self._owned:
            self._owned = False
            self.ownership.release(self.key)

    async def _on_delivery(self, delivered: DeliveredMessage) -> None:
        await self._on_command(messages.Incoming.from_delivery(delivered))

    async def _on_command(self, incoming: Incoming) -> None:
        self.commands_received += 1
        command_type = "unknown"
        # Control commands get a CONSUMER span; audio (ten a second per call) is covered by metrics, and
        # gets a span only when it fails.
        span: Span = trace.INVALID_SPAN
        error: str | None = None
        try:
            command = messages.decode_command(incoming.body, self.settings.max_command_bytes)
            command_type = command.type
            if command_type != "audio":
                span = self._consumer_span(incoming, command_type)
            # Everything up to the first await runs in delivery order (audio, mark, the local part of clear).
            result = self._execute_now(command)
            if result is None:
                result = await self._execute_async(command, span)
            self._reply(incoming, messages.reply_ok(self.session_id, result), span)
        except Exception as exc:
            if isinstance(exc, BadCommand | CommandError):
                if isinstance(exc, BadCommand) and command_type == "unknown":
                    command_type = exc.command_type
                code, text, error = exc.code, str(exc), f"{exc.code} {exc}"
            else:
                log.exception("command failed")
                code, text, error = 500, f"internal error: {type(exc).__name__}", type(exc).__name__
            if span is trace.INVALID_SPAN:  # not created yet (audio, or undecodable): failures are traced
                span = self._consumer_span(incoming, command_type)
            self._reject(incoming, command_type, code, text, span)
        finally:
            self.telemetry.end(span, error)

    def _consumer_span(self, incoming: Incoming, command_type: str) -> Span:
        """Continues the consumer's trace when the command carries a traceparent; linked to the call."""
        if not self.telemetry.tracing:
            return trace.INVALID_SPAN  # no SDK: a span would record nothing anyway
        session_span = self.call.span if self.call else None
        parent_ctx = self.telemetry.extract_context(incoming.headers)
        if parent_ctx is None and session_span is not None:
            parent_ctx = trace.set_span_in_context(session_span)
        links = [Link(session_span.get_span_context())] if session_span is not None else []
        attributes = messaging_attributes(
            "process", self.broker.topology.commands, incoming.routing_key or "", incoming.message_id
        )
        attributes["rtvbp.command"] = command_type
        return self.telemetry.tracer.start_span(
            f"process {self.broker.topology.commands}",
            context=parent_ctx,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            links=links,
        )

    def _reject(
        self,
        incoming: Incoming,
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
            self._check_whole_samples(len(audio))
            queued = call.enqueue_audio(bytes(audio))
            playout = call.playout
            assert playout is not None
            backlog_ms = int(playout.queued_ms)  # the whole queue after this command, not this command
            # queued_ms: the v1 name of backlog_ms, kept until v2
            return {"queued_bytes": queued, "backlog_ms": backlog_ms, "queued_ms": backlog_ms}
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
        for field in ("name", "sample_rate", "channels", "bit_depth", "endianness"):
            if field in codec and codec[field] != self.codec.get(field):
                raise BadCommand(
                    400,
                    f"audio codec {codec.get('id', codec)} does not match the session's {self.codec['id']}",
                    "audio",
                )

    def _check_whole_samples(self, size: int) -> None:
        # A partial sample would shift every later sample by a byte: noise, not a padded frame.
        block = self._fmt.block_align if self._fmt is not None else 1
        if size % block:
            raise BadCommand(
                400,
                f"audio of {size} bytes is not whole samples of {self.codec.get('id', 'the session codec')}: "
                f"send a multiple of {block} bytes",
                "audio",
            )

    def _require_call(self) -> Call:
        if self.call is None:
            raise CommandError(409, "session not started")
        return self.call
