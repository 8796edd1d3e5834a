"""One call as the agent sees it: its audio and events as async iterators, its commands as methods."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from rtvbp_consumer.commands import Commands
from rtvbp_consumer.events import AudioGap, Codec, Event, PlayoutMark, SessionEnded, SessionUpdated
from rtvbp_consumer.stream import CallStream


@dataclass(frozen=True, slots=True)
class ClearResult:
    """What the caller will not hear after a `clear`."""

    bridge_bytes: int
    voice_bytes: int
    marks_dropped: list[str]


_END = None  # sentinel closing the audio and event queues


class Call:
    """A call followed by a Consumer. Created by the library; get them from `Consumer.calls()`.

    Audio and events are buffered from the call's first message, whether or not anyone iterates yet,
    so start iterating whenever you like. Both iterators end once the call has ended and all its audio
    has arrived (or has been reported missing as an `AudioGap`).
    """

    def __init__(
        self,
        started: dict[str, Any],
        session_id: str,
        session_key: str,
        commands: Commands,
        end_grace_s: float,
        on_finished: Callable[[Call], None],
        *,
        started_ms: int = 0,
        on_late: Callable[[Call], None] | None = None,
    ) -> None:
        self.session_id = session_id
        self.session_key = session_key
        self.started = started  # the session.started data: call, application, metadata, codec, ...
        self.codec = Codec.from_map(started["audio_codec"])
        self.chunk_ms = int((started.get("audio") or {}).get("chunk_ms", 0))
        self.stream = CallStream(self.codec)
        self._commands = commands
        self._end_grace_s = end_grace_s
        self._on_finished = on_finished
        self._audio: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._events: asyncio.Queue[Event | None] = asyncio.Queue()
        self._ended: asyncio.Future[SessionEnded] = asyncio.get_running_loop().create_future()
        self._marks: dict[str, list[asyncio.Future[PlayoutMark | None]]] = {}
        self._grace: asyncio.TimerHandle | None = None
        self.started_ms = started_ms  # epoch ms of session.started: where a replay of the call seeks to
        # With a replay stream: asked to read the call's beginning when live messages show it was missed.
        self._on_late = on_late
        self.replaying = False
        self.replay_done = asyncio.Event()  # set when the replay has caught up with the live messages
        self._last_event_ms = started_ms  # epoch ms of the last event delivered
        self._held: list[tuple[int, int, bytes] | Event] = []  # live messages kept back while replaying

    def __repr__(self) -> str:
        return f"Call({self.session_id!r}, {self.codec.name}/{self.codec.sample_rate}/{self.codec.channels})"

    # -- what the agent reads ------------------------------------------------------------------------

    async def audio(self) -> AsyncIterator[bytes]:
        """Caller audio in order, each byte once, from the first chunk; ends after the last one."""
        while (chunk := await self._audio.get()) is not _END:
            yield chunk
        self._audio.put_nowait(_END)  # a second iterator ends too

    async def events(self) -> AsyncIterator[Event]:
        """Typed events in order, each once; `SessionEnded` is the last, after all the audio."""
        while (event := await self._events.get()) is not _END:
            yield event
        self._events.put_nowait(_END)

    async def ended(self, timeout: float | None = None) -> SessionEnded:
        """The session.ended event, once the call is over and all its audio has arrived."""
        return await asyncio.wait_for(asyncio.shield(self._ended), timeout)

    @property
    def is_ended(self) -> bool:
        return self._ended.done()

    @property
    def missing_bytes(self) -> int:
        """Caller audio bytes that will never arrive (each also reported by an AudioGap event)."""
        return self.stream.missing_bytes

    # -- commands ---------------------------------------------------------------------------------------

    async def play(self, audio: bytes, *, wait: bool = True, timeout: float = 5.0) -> dict[str, Any]:
        """Queue audio (the call's codec) for the caller. With `wait` (default) return the reply's
        audio result (`queued_bytes`, ...) or raise CommandError; without, return at once (a failure then
        arrives as a CommandRejected event)."""
        return await self._commands.send(
            self.session_key, {"type": "audio", "audio": audio}, wait=wait, timeout=timeout
        )

    async def mark(self, name: str, timeout: float = 5.0) -> PlayoutMark | None:
        """Put a mark after the audio queued so far and return when the caller has heard up to it.
        Returns None when it will never be played (a `clear` dropped it, or the call ended)."""
        waiter: asyncio.Future[PlayoutMark | None] = asyncio.get_running_loop().create_future()
        self._marks.setdefault(name, []).append(waiter)
        try:
            await self._commands.send(self.session_key, {"type": "mark", "name": name}, timeout=timeout)
            return await waiter
        finally:
            waiters = self._marks.get(name, [])
            if waiter in waiters:
                waiters.remove(waiter)

    async def clear(self, timeout: float = 5.0) -> ClearResult:
        """Barge-in: drop the audio queued at the bridge and at the voice."""
        result = await self._commands.send(self.session_key, {"type": "clear"}, timeout=timeout)
        dropped = [str(name) for name in result.get("marks_dropped") or []]
        for name in dropped:
            self._resolve_marks(name, None)
        return ClearResult(int(result.get("bridge_bytes", 0)), int(result.get("voice_bytes", 0)), dropped)

    async def request(
        self, method: str, params: dict[str, Any] | None = None, timeout: float = 5.0
    ) -> dict[str, Any]:
        """Any application->voice request (`session.get`, `recording.start`, ...): the voice's result."""
        body: dict[str, Any] = {"type": "request", "method": method, "params": params or {}}
        return await self._commands.send(self.session_key, body, timeout=timeout)

    async def send_event(self, event: str, data: dict[str, Any] | None = None) -> None:
        """An application->voice event (`input.transcript`, `agent.tool.call`, ...)."""
        await self._commands.send(self.session_key, {"type": "event", "event": event, "data": data or {}})

    async def hangup(self, reason: str = "completed", timeout: float = 5.0) -> dict[str, Any]:
        return await self.request("call.hangup", {"reason": reason}, timeout=timeout)

    async def move(
        self, reason: str | None = None, application_id: str | None = None, timeout: float = 5.0
    ) -> dict[str, Any]:
        """Hand the call to the next application in the flow (or `application_id`)."""
        params = {k: v for k, v in (("reason", reason), ("application_id", application_id)) if v}
        return await self.request("application.move", params, timeout=timeout)

    # -- fed by the consumer ----------------------------------------------------------------------------

    def feed_chunk(self, seq: int, ts: int, audio: bytes) -> None:
        """A live caller-audio chunk."""
        if not self.replaying and seq > self.stream.next_audio_seq and self._on_late is not None:
            self.begin_replay()  # chunks before this one went by before we followed the call
        if self.replaying:
            self._held.append((seq, ts, audio))
            self._check_replay()
        else:
            self._accept_chunk(seq, ts, audio)

    def feed_event(self, event: Event) -> None:
        """A live event."""
        late = event.seq > self.stream.next_event_seq
        if not self.replaying and late and self._on_late is not None:
            self.begin_replay()
        if self.replaying:
            self._held.append(event)
            self._check_replay()
        else:
            self._accept_event(event)

    # -- fed from the replay stream ---------------------------------------------------------------------

    def begin_replay(self) -> None:
        """Hold live messages back and have the call's beginning read from the replay stream, which
        feeds `replayed_chunk` / `replayed_event` until `replay_caught_up` (or `end_replay`)."""
        if self.replaying or self._on_late is None or self._ended.done():
            return
        self.replaying = True
        self.replay_done.clear()
        self._on_late(self)

    def replayed_chunk(self, seq: int, ts: int, audio: bytes) -> None:
        self._accept_chunk(seq, ts, audio)
        self._check_replay()

    def replayed_event(self, event: Event) -> None:
        self._accept_event(event)
        self._check_replay()

    def _check_replay(self) -> None:
        if self.replaying and self.replay_caught_up:
            self.replay_done.set()

    @property
    def replay_caught_up(self) -> bool:
        """The replay has reached what the live queue delivered (or the call is over): stop it."""
        if self._ended.done():
            return True
        first_chunk = next((m for m in self._held if isinstance(m, tuple)), None)
        if first_chunk is not None:
            return self.stream.next_audio_seq >= first_chunk[0]
        # No live audio yet (a silent caller): the events decide; a later chunk past a hole replays again.
        first_event = next((m for m in self._held if not isinstance(m, tuple) and m.seq >= 0), None)
        return first_event is not None and self.stream.next_event_seq >= first_event.seq

    @property
    def replay_from_ms(self) -> int:
        """Epoch ms to read the replay from: where the delivered audio stopped (the call's start at first)."""
        return min(self.started_ms + int(self.stream.position_ms), self._last_event_ms)

    def end_replay(self) -> None:
        """Back to live: deliver what was held (what the replay already delivered is a duplicate)."""
        if not self.replaying:
            return
        self.replaying = False
        self.replay_done.set()
        held, self._held = self._held, []
        for message in held:
            if isinstance(message, tuple):
                self._accept_chunk(*message)
            else:
                self._accept_event(message)

    def _accept_chunk(self, seq: int, ts: int, audio: bytes) -> None:
        if self._ended.done():
            return
        deliver, gap = self.stream.accept_chunk(seq, ts, audio)
        if gap is not None:
            self._events.put_nowait(gap)
        if deliver:
            self._audio.put_nowait(audio)
            if self._grace is not None and self.stream.audio_complete:
                self._finish()

    def _accept_event(self, event: Event) -> None:
        if self._ended.done():
            return
        if event.seq >= 0:  # (a bridge_lost session.ended has no seq, and nothing can follow it)
            deliver, gap = self.stream.accept_event(event.seq)
            if gap is not None:
                self._events.put_nowait(gap)
            if not deliver:
                return
            self._last_event_ms = max(self._last_event_ms, event.ts)
        if isinstance(event, SessionEnded):
            self.stream.ended = event
            if self.stream.audio_complete:
                self._finish()
            else:  # the last chunks may still be on their way (different exchange, different queue)
                self._grace = asyncio.get_running_loop().call_later(self._end_grace_s, self._finish)
            return
        if isinstance(event, AudioGap):
            self.stream.note_bridge_gap(event)
        elif isinstance(event, SessionUpdated):
            self.codec = self.stream.codec = event.codec
        elif isinstance(event, PlayoutMark):
            self._resolve_marks(event.name, event)
        self._events.put_nowait(event)

    def lost(self, detail: str) -> None:
        """The call ended unseen (its session.ended was published while we were disconnected)."""
        if self._ended.done() or self.stream.ended is not None:
            return
        data: dict[str, Any] = {"reason": "unknown", "detail": detail, "counters": {}}
        self.stream.ended = SessionEnded(
            "session.ended", -1, 0, data, reason="unknown", duration_ms=0, counters={}
        )
        self._finish()

    def _resolve_marks(self, name: str, mark: PlayoutMark | None) -> None:
        waiters = self._marks.get(name)
        if waiters:
            waiter = waiters.pop(0)
            if not waiter.done():
                waiter.set_result(mark)

    def _finish(self) -> None:
        if self._ended.done() or self.stream.ended is None:
            return
        if self._grace is not None:
            self._grace.cancel()
        tail = self.stream.tail_gap()
        if tail is not None:
            self._events.put_nowait(tail)
        self._events.put_nowait(self.stream.ended)
        self._events.put_nowait(_END)
        self._audio.put_nowait(_END)
        for waiters in self._marks.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
        self._ended.set_result(self.stream.ended)
        self.replay_done.set()
        self._on_finished(self)
