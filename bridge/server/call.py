"""One call: drives an `ApplicationSession` over a live WebSocket and a `CallApp` (the broker side).

Two tasks per call: the reader (socket -> session) and the timer (request timeouts, initialize deadline,
delayed close). The two paths that run 50 times a second per call are plain loop callbacks instead of
task wake-ups: caller audio is taken straight from the socket's parser (`HandoffConnection`) and the
pacer (`pacer.py`) writes playout frames from a timer. Request waiters and their telemetry are in
`requests.py`. All protocol decisions are in the sans-I/O session; `Call` keeps the lifecycle and applies
the session's actions.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.trace import Span
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from bridge.audio.format import AudioFormat
from bridge.audio.playout import Playout, PlayoutFull
from bridge.compat.websockets import HandoffConnection
from bridge.port import AudioQueued, CallApp, CallRefused, CallStats, CallSummary, Cleared, CommandError
from bridge.protocol.catalog import PayloadError
from bridge.protocol.session import (
    CLOSE_INTERNAL,
    CLOSE_POLICY,
    Action,
    Answered,
    ApplicationSession,
    AudioIn,
    Close,
    Ended,
    EndReason,
    InitializeRequested,
    ProtocolViolation,
    Ready,
    RequestSettled,
    SendText,
    SessionConfig,
    SessionStateError,
    State,
    VoiceEvent,
)
from bridge.server.pacer import Pacer, unsent_bytes
from bridge.server.requests import Requests
from bridge.server.wakeup import Wakeup
from bridge.telemetry import Telemetry, current_session

log = logging.getLogger("bridge.call")

# websockets buffers writes in user space without bound; a voice that stops reading would make the
# bridge hold everything sent its way. Beyond this, commands are refused (413); beyond the hard limit
# (reachable only by the voice's own requests, e.g. pings it never reads answers to) it is disconnected.
MAX_UNSENT_BYTES = 1 << 20
MAX_UNSENT_BYTES_HARD = 4 * MAX_UNSENT_BYTES


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(eq=False)
class Call:
    """One live call; implements `bridge.port.CallControl` for its bus side."""

    ws: ServerConnection
    config: SessionConfig
    app: CallApp
    playout_lead_ms: int = 100
    playout_max_ms: int = 60_000
    telemetry: Telemetry = field(default_factory=Telemetry)
    span: Span | None = None  # the call's span; request spans are its children
    on_violation: Callable[[ProtocolViolation], None] | None = None
    # State, read by the server and tests; set here and by the call itself, never by the constructor.
    started_at: float = field(init=False)
    session: ApplicationSession = field(init=False)
    stats: CallStats = field(init=False)
    playout: Playout | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.started_at = time.monotonic()
        self.session = ApplicationSession(self.config, opened_at=self.started_at, wall_ms=wall_ms)
        self.stats = CallStats()
        self._pacer = Pacer(self.ws, self.stats, self.app, self.telemetry, self._fail)
        self._requests = Requests(self.telemetry)
        self._wake_timer = Wakeup()
        self._close_at: float | None = None
        self._close: Close | None = None
        self._ctx = contextvars.copy_context()  # replaced once the session id is known
        self._summary: CallSummary | None = None
        self._start_task: asyncio.Task[None] | None = None

    # ---- lifecycle ------------------------------------------------------------------------------------

    async def run(self) -> CallSummary:
        """Serve the call until the socket is gone; always reports the end to the app exactly once."""
        tasks = [asyncio.create_task(self._timer())]
        if isinstance(self.ws, HandoffConnection):
            self.ws.offer_binary_to(self._take_audio)
        close_code: int | None = None
        close_reason = ""
        try:
            await self._read()
        except ConnectionClosed:
            pass  # a broken socket ends the call like a close; the code tells which
        except Exception:
            log.exception("call failed")
            self.session.mark_ending("error", "internal error")
        finally:
            rcvd = self.ws.protocol.close_rcvd
            sent = self.ws.protocol.close_sent
            close_code = rcvd.code if rcvd else sent.code if sent else None
            close_reason = rcvd.reason if rcvd else sent.reason if sent else ""
            self._pacer.stop()
            for task in tasks:
                task.cancel()
            if self._start_task is not None:
                self._start_task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._apply(self.session.connection_lost(close_code, close_reason))
            with contextlib.suppress(Exception):
                await self.ws.close()
        assert self._summary is not None
        return self._summary

    async def _read(self) -> None:
        session, stats, audio_in = self.session, self.stats, self.app.audio_in
        async for message in self.ws:
            if isinstance(message, str):
                self._apply(session.receive_text(message, time.monotonic(), wall_ms()))
            elif message and session.audio_open:  # the hot path: caller audio, no action objects
                stats.frames_in += 1
                stats.bytes_in += len(message)
                audio_in(message)
            else:
                self._apply(session.receive_binary(message))

    def _take_audio(self, data: bytes) -> bool:
        """Caller audio offered straight from the socket parser; False leaves it to the reader."""
        if not data or not self.session.audio_open:
            return False
        stats = self.stats
        stats.frames_in += 1
        stats.bytes_in += len(data)
        try:
            self._ctx.run(self.app.audio_in, data)
        except Exception:
            self._ctx.run(self._fail, "caller audio")
        return True

    def _fail(self, where: str) -> None:
        """A bug in a callback path: end this call like a failing reader would, never the process."""
        init = self.session.init_params
        log.exception("call %s failed (%s)", init.call.session_id if init else "-", where)
        if isinstance(self.ws, HandoffConnection):
            self.ws.binary_sink = None
        self._pacer.stop()
        self.end(CLOSE_INTERNAL, "internal error", "error", "internal error")

    # ---- downstream API (used by the broker link) -----------------------------------------------------

    def enqueue_audio(self, audio: bytes) -> AudioQueued:
        playout = self._require_playout()
        try:
            queued = playout.enqueue(audio, time.monotonic())
        except PlayoutFull as exc:
            raise CommandError(413, f"playout buffer full: {exc}") from None
        self._pacer.reschedule()
        return AudioQueued(queued_bytes=queued, backlog_ms=int(playout.queued_ms))

    def add_mark(self, name: str) -> None:
        playout = self._require_playout()
        playout.add_mark(name, time.monotonic())
        self._pacer.reschedule()

    async def clear(self) -> Cleared:
        """Barge-in: drop our queue at once, then have the voice drop its buffer. Returns both counts."""
        result = self._require_playout().clear(time.monotonic())
        settled = await self.request("audio.buffer.clear", {})
        if not settled.ok:
            raise CommandError(settled.code, settled.message)
        voice_bytes = settled.result.get("len", 0) if isinstance(settled.result, dict) else 0
        return Cleared(result, int(voice_bytes))

    async def request(self, method: str, params: Any, parent: Span | None = None) -> RequestSettled:
        """Send an application->voice request and wait for its settlement (answer, error, timeout, close)."""
        self._require_send_room()
        try:
            request_id, actions = self.session.send_request(method, params, time.monotonic())
        except SessionStateError as exc:
            raise CommandError(exc.code, str(exc)) from None
        except PayloadError as exc:
            raise CommandError(400, str(exc)) from None

        def put_on_the_wire() -> None:
            self._apply(actions)
            self._wake_timer.set()  # a new timeout deadline

        return await self._requests.send(request_id, method, parent or self.span, put_on_the_wire)

    def send_event(self, name: str, data: Any) -> None:
        self._require_send_room()
        try:
            self._apply(self.session.send_event(name, data))
        except SessionStateError as exc:
            raise CommandError(exc.code, str(exc)) from None
        except PayloadError as exc:
            raise CommandError(400, str(exc)) from None

    def end(self, code: int, reason: str, end_reason: EndReason, detail: str = "") -> None:
        self._apply(self.session.close(code, reason, end_reason, detail))

    def mark_ending(self, reason: EndReason, detail: str) -> None:
        self.session.mark_ending(reason, detail)

    def summary(self, reason: EndReason, detail: str) -> CallSummary:
        duration_ms = int((time.monotonic() - self.started_at) * 1000)
        return CallSummary(reason, detail, duration_ms, self.stats, self.session.counters)

    def _require_send_room(self) -> None:
        if (unsent := unsent_bytes(self.ws)) > MAX_UNSENT_BYTES:
            raise CommandError(413, f"voice is not reading: {unsent} bytes waiting to be sent")

    def _require_playout(self) -> Playout:
        if self.playout is None or self.session.state in (State.CLOSING, State.CLOSED):
            raise CommandError(409, f"no audio path in state {self.session.state.value}")
        return self.playout

    # ---- applying session actions -----------------------------------------------------------------------

    def _apply(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, AudioIn):
                self.stats.frames_in += 1
                self.stats.bytes_in += len(action.data)
                self.app.audio_in(action.data)
            elif isinstance(action, SendText):
                self._send(action.text)
            elif isinstance(action, VoiceEvent):
                self.app.voice_event(action)
            elif isinstance(action, RequestSettled):
                self._requests.settle(action)
            elif isinstance(action, InitializeRequested):
                self._requests.initialize_started(time.monotonic())
                current_session.set(action.params.call.session_id)  # for every log line of this call
                self._ctx = contextvars.copy_context()  # ... and of the callbacks (audio in, pacer)
                if self.span is not None:
                    self.span.set_attributes(
                        {
                            "rtvbp.session_id": action.params.call.session_id,
                            "rtvbp.call_id": action.params.call.id,
                            "rtvbp.application_id": action.params.application.id,
                            "rtvbp.codec": action.codec.id,
                        }
                    )
                self._start_task = asyncio.create_task(self._initialize(action))
            elif isinstance(action, Close):
                self._schedule_close(action)
            elif isinstance(action, Answered):
                self._requests.answered(action, self.span)
            elif isinstance(action, ProtocolViolation):
                self.telemetry.protocol_violations.add(1, {"kind": action.kind})
                if self.on_violation is not None:
                    self.on_violation(action)
                log.debug("protocol violation %s: %s", action.kind, action.detail)
            elif isinstance(action, Ended):
                self._finish(action)
            elif isinstance(action, Ready):
                pass

    def _send(self, message: str | bytes) -> None:
        if (unsent := unsent_bytes(self.ws)) > MAX_UNSENT_BYTES_HARD:
            # Commands stop at the soft limit: the voice's own requests did this, it floods without reading.
            self.end(
                CLOSE_POLICY, "peer not reading", "error", f"voice stopped reading ({unsent} bytes unsent)"
            )
            return
        # websockets queues writes in order; a send to a closing socket is not an error for us.
        task = asyncio.ensure_future(self.ws.send(message))
        task.add_done_callback(_ignore_closed)

    async def _initialize(self, init: InitializeRequested) -> None:
        fmt = AudioFormat.from_codec(
            init.codec.name, init.codec.sample_rate, init.codec.bit_depth, init.codec.channels
        )
        # Two frames per pacer wake-up once the lead leaves room for it (>= 60 ms): half the timers.
        batch = 2 if self.playout_lead_ms >= 3 * fmt.frame_ms else 1
        # The playout exists before the bus side starts: consumers may send audio as soon as they see
        # session.started, which goes out before its confirm (and before this call is accepted). It is
        # queued now and paced once the voice has the initialize answer.
        self.playout = Playout(
            fmt, lead_ms=self.playout_lead_ms, max_buffer_ms=self.playout_max_ms, batch_frames=batch
        )
        try:
            await self.app.start(self, init)
        except CallRefused as exc:
            self._apply(self.session.reject_initialize(exc.code, exc.message))
            return
        except Exception as exc:
            log.exception("session start failed")
            self._apply(self.session.reject_initialize(500, f"session setup failed: {type(exc).__name__}"))
            return
        self._pacer.start(self.playout, self._ctx)
        self._apply(self.session.accept_initialize(time.monotonic()))
        # Audio that arrived during set-up goes out behind the answer (its send runs on the next turn).
        asyncio.get_running_loop().call_soon(self._pacer.reschedule, context=self._ctx)

    def _schedule_close(self, close: Close) -> None:
        at = time.monotonic() + close.delay_ms / 1000
        if self._close_at is None or at < self._close_at:
            self._close_at, self._close = at, close
            self._wake_timer.set()

    def _finish(self, ended: Ended) -> None:
        if self.playout is not None:
            self.stats.dropped_out_bytes += self.playout.clear(time.monotonic()).bytes_dropped
        self._summary = self.summary(ended.reason, ended.detail)

    # ---- background tasks -----------------------------------------------------------------------------

    async def _timer(self) -> None:
        while True:
            now = time.monotonic()
            self._apply(self.session.expire(now))
            if self._close_at is not None and now >= self._close_at and self._close is not None:
                close, self._close_at = self._close, None
                await self.ws.close(close.code, close.reason)
                return
            deadlines = [d for d in (self.session.next_deadline(), self._close_at) if d is not None]
            await self._wake_timer.sleep_until(min(deadlines) if deadlines else None)


def _ignore_closed(task: asyncio.Future[None]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None and not isinstance(exc, ConnectionClosed):
        log.warning("send failed: %r", exc)
