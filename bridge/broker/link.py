"""One call bridged onto RabbitMQ: the `CallApp` the WebSocket side talks to (see bridge/port.py).

It composes the session's parts: `CommandQueue` (ownership and commands in), `SessionOutbox` (events
with their `seq`, replies), `AudioUplink` (caller audio re-chunked, gaps reported) and `CommandHandler`
(commands executed against the call). This module decides the order of a call's story on the bus:
session.started (confirmed before the call is accepted), what the voice said meanwhile, ..., the last
audio, open gaps, session.ended.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from bridge.audio.format import AudioFormat
from bridge.audio.playout import MarkReached
from bridge.broker.client import BrokerClient
from bridge.broker.downstream import CommandHandler
from bridge.broker.names import session_key
from bridge.broker.outbox import SessionOutbox
from bridge.broker.ownership import CommandQueue, LocalOwnership
from bridge.broker.uplink import AudioUplink
from bridge.port import CallControl, CallRefused, CallSummary
from bridge.protocol.session import CLOSE_INTERNAL, InitializeRequested, VoiceEvent
from bridge.telemetry import Telemetry

log = logging.getLogger("bridge.link")

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
        self.call: CallControl | None = None
        self.session_id = ""
        self.key = ""
        self.codec: dict[str, Any] = {}
        self.outbox: SessionOutbox | None = None
        self.uplink: AudioUplink | None = None
        self.commands: CommandHandler | None = None
        self._queue: CommandQueue | None = None
        self._owned = False
        self._started = False  # session.started confirmed: the call is on the bus
        self._announced = False  # session.started submitted: consumers must also hear how the call ends
        self._early_events: list[VoiceEvent] = []

    # ---- CallApp ----------------------------------------------------------------------------------------

    async def start(self, call: CallControl, init: InitializeRequested) -> None:
        self.call = call
        self.session_id = init.params.call.session_id
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
        outbox = self.outbox = SessionOutbox(
            self.broker, self.telemetry, self.session_id, self.key, call.span
        )
        self.uplink = AudioUplink(
            self.broker,
            self.telemetry,
            AudioFormat.from_codec(codec.name, codec.sample_rate, codec.bit_depth, codec.channels),
            key=self.key,
            session_id=self.session_id,
            codec=self.codec,
            headers=outbox.audio_headers,
            chunk_ms=self.settings.chunk_ms,
            backlog_ms=self.settings.audio_backlog_ms,
            mirror_out=self.settings.mirror_out,
            report_gap=outbox.gap,
        )
        self.commands = CommandHandler(
            call,
            outbox,
            self.telemetry,
            commands_exchange=self.broker.topology.commands,
            session_codec=self.codec,
            block_align=self.uplink.fmt.block_align,
            max_command_bytes=self.settings.max_command_bytes,
        )
        self._queue = CommandQueue(
            self.broker, self.session_id, self.key, self.commands.on_delivery, self._ownership_lost
        )
        try:
            await asyncio.wait_for(self._queue.claim(), _left(deadline))
        except CallRefused:
            await self._release()
            raise
        except TimeoutError:
            await self._release()
            raise CallRefused(503, "broker too slow: the command queue was not ready in time") from None
        confirmed = outbox.event("session.started", self._started_data(init), confirm=True)
        assert confirmed is not None
        self._announced = True  # from here on, consumers must also hear how the call ends
        self.broker.ledger.call_started(self.key, self.session_id)  # so a surviving replica can end it
        for event in self._early_events:  # what the voice said during set-up, right behind the start
            outbox.event(event.name, event.raw)
        self._early_events.clear()
        try:
            await asyncio.wait_for(asyncio.shield(confirmed), _left(deadline))
        except (TimeoutError, Exception) as exc:
            # It cannot be withdrawn once on the wire (a blocked broker takes it later), so consumers
            # would see a call start that never ends: close it for them, in order, right behind it.
            self._announced = False
            why = f"call refused: broker did not confirm session.started ({type(exc).__name__})"
            outbox.event("session.ended", self._ended_data(call.summary("error", why)))
            await self._release()
            raise CallRefused(503, f"broker did not confirm session.started: {type(exc).__name__}") from None
        self._started = True
        self.telemetry.sessions_started.add(1)

    def voice_event(self, event: VoiceEvent) -> None:
        if self.outbox is not None and (self._started or self._announced):
            # The control publisher keeps order: behind session.started even before it is confirmed.
            self.outbox.event(event.name, event.raw)
        elif len(self._early_events) < EARLY_EVENTS_MAX:
            self._early_events.append(event)  # the call is being set up; published once it is announced

    def audio_in(self, data: bytes) -> None:
        if self.uplink is not None:
            self.uplink.caller_audio(data)

    def audio_out(self, frame: bytes) -> None:
        if self.uplink is not None:
            self.uplink.played_audio(frame)

    def mark_reached(self, mark: MarkReached) -> None:
        if self.outbox is not None:
            self.outbox.event("playout.mark", {"name": mark.name, "position_ms": mark.position_ms})

    async def end(self, summary: CallSummary) -> None:
        if self.uplink is not None:
            # rtvbp.audio.dropped{direction="in"} counts what session.ended reports as dropped_in_bytes.
            self.telemetry.totals.dropped_bytes["in"] += self.uplink.dropped_in_total
        try:
            if self.outbox is not None and self._started:
                assert self.uplink is not None
                self.uplink.flush()
                self.outbox.event("session.ended", self._ended_data(summary))
            elif self.outbox is not None and self._announced:
                # The voice left while session.started awaited its confirm: close the story anyway.
                self.outbox.event("session.ended", self._ended_data(summary))
        finally:
            await self._release()

    # ---- the story's bookends -----------------------------------------------------------------------

    def _started_data(self, init: InitializeRequested) -> dict[str, Any]:
        t = self.broker.topology
        return {
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

    def _ended_data(self, summary: CallSummary) -> dict[str, Any]:
        s, p, up, cmds = summary.stats, summary.protocol, self.uplink, self.commands
        caller_chunks = up.caller.chunks_out if up else 0
        assert self.outbox is not None
        return {
            "reason": summary.reason,
            "detail": summary.detail,
            "duration_ms": summary.duration_ms,
            "counters": {
                "frames_in": s.frames_in,
                "bytes_in": s.bytes_in,
                "chunks_in": caller_chunks,
                "chunks_out": caller_chunks,  # v1 alias of chunks_in, kept until v2
                "frames_out": s.frames_out,
                "bytes_out": s.bytes_out,
                # bytes_in = delivered + dropped_in_bytes (gaps plus a trailing partial sample).
                "dropped_in_bytes": up.dropped_in_total if up else 0,
                "dropped_in_chunks": up.dropped_in_chunks if up else 0,
                "dropped_out_bytes": s.dropped_out_bytes,
                "malformed_frames": p.malformed_frames,
                "early_binary_frames": p.early_binary_frames,
                "events_published": self.outbox.next_seq + 1,  # this session.ended included
                "commands_received": cmds.received if cmds else 0,
                "commands_rejected": cmds.rejected if cmds else 0,
            },
        }

    def _ownership_lost(self) -> None:
        if self.call is not None:
            self.call.end(
                CLOSE_INTERNAL,
                "session ownership lost",
                "error",
                "ownership lost: another bridge claimed the session's command queue during a broker outage",
            )

    async def _release(self) -> None:
        self.broker.ledger.call_ended(self.key)  # behind session.ended; a no-op if never announced
        if self._queue is not None:
            await self._queue.release()
        if self._owned:
            self._owned = False
            self.ownership.release(self.key)


def _left(deadline: float) -> float:
    return max(0.0, deadline - asyncio.get_running_loop().time())
