"""`rtvbp-bridge tap`: watch calls on the bus exactly as any consumer sees them.

Subscribes (exclusive auto-delete queues, nothing left behind) to the events and audio exchanges for one
session, a routing-key pattern, or everything; prints each event as it arrives (or one JSON object per
line) and, instead of one line per audio chunk, one summary line per session when it ends. With
`--wav-dir` each session's caller audio is written to `<session>-in.wav`, and the played audio to
`<session>-out.wav` when the bridge mirrors it (`BRIDGE_MIRROR_OUT=true`), at the call's codec rate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import aio_pika
import msgpack
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection
from aio_pika.exceptions import AMQPException

from bridge.audio.wav import write_wav
from bridge.broker.names import Topology, session_key
from bridge.tools.tap_report import AudioTrack, JsonLinesPrinter, PrettyPrinter, Printer, SessionTrace

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
EXAMPLES = """examples:
  rtvbp-bridge tap                                   # every call, events as they come
  rtvbp-bridge tap --session abc123 --wav-dir out/   # one call, and its audio as WAV files
  rtvbp-bridge tap --pattern '#.dtmf' --jsonl        # every digit pressed, as JSON lines
"""
#: How long to wait after `session.ended` for the session's last audio chunks (they travel on another queue).
SETTLE_S = 1.0


@dataclass(frozen=True)
class Selection:
    """Which sessions to watch, as binding keys for the events and the audio exchange."""

    events_key: str = "#"
    audio_key: str = "#"
    label: str = "all sessions"

    @classmethod
    def session(cls, session_id: str) -> Selection:
        key = session_key(session_id)
        return cls(f"{key}.#", f"{key}.*", f"session {session_id}")

    @classmethod
    def pattern(cls, pattern: str) -> Selection:
        return cls(pattern, pattern, f"pattern {pattern}")


class Tap:
    """Follows sessions on the bus; usable from code (tests, the demo) and from the command line."""

    def __init__(
        self,
        amqp_url: str,
        prefix: str,
        selection: Selection | None = None,
        wav_dir: Path | None = None,
        printer: Printer | None = None,
        settle_s: float = SETTLE_S,
        keep_finished: bool = True,
    ) -> None:
        self.amqp_url, self.topology = amqp_url, Topology(prefix)
        self.selection = selection or Selection()
        self.wav_dir, self.printer, self.settle_s = wav_dir, printer, settle_s
        self.traces: dict[str, SessionTrace] = {}  # sessions still going
        #: Ended sessions with their events and audio (for code); a long-running CLI tap keeps none.
        self.finished: list[SessionTrace] = []
        self.finished_count = 0
        self.keep_finished = keep_finished
        self._changed = asyncio.Condition()
        self._conn: AbstractRobustConnection | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> Tap:
        self._conn = await aio_pika.connect_robust(self.amqp_url)
        channel = await self._conn.channel()
        await channel.set_qos(prefetch_count=500)
        for name, key, handler in (
            (self.topology.events, self.selection.events_key, self._on_event),
            (self.topology.audio, self.selection.audio_key, self._on_audio),
        ):
            # The bridge's own declaration (durable topic): an identical declare never conflicts.
            exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)
            queue: AbstractQueue = await channel.declare_queue(exclusive=True, auto_delete=True)
            await queue.bind(exchange, key)
            await queue.consume(handler, no_ack=True)
        return self

    async def stop(self) -> None:
        """Stop listening; sessions still open are written out with what arrived so far."""
        for task in list(self._tasks):
            task.cancel()
        for trace in list(self.traces.values()):
            if not trace.done:
                self._finish(trace)
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def wait_sessions(self, count: int, timeout: float | None) -> list[SessionTrace]:
        """Wait until `count` sessions have ended and been written out."""

        async def enough() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: self.finished_count >= count)

        await asyncio.wait_for(enough(), timeout)
        return self.finished[:count]

    def _trace(self, body: dict[str, Any], routing_key: str) -> SessionTrace:
        session_id = str(body.get("session_id", routing_key.split(".", 1)[0]))
        trace = self.traces.get(session_id)
        if trace is None:
            trace = self.traces[session_id] = SessionTrace(session_id, routing_key.split(".", 1)[0])
        return trace

    @staticmethod
    def _decode(message: AbstractIncomingMessage) -> dict[str, Any] | None:
        try:
            body = msgpack.unpackb(message.body, raw=False)
        except Exception:
            return None
        return body if isinstance(body, dict) else None

    async def _on_event(self, message: AbstractIncomingMessage) -> None:
        body = self._decode(message)
        if body is None:
            if self.printer is not None:
                self.printer.note(f"undecodable message on {message.routing_key} ({len(message.body)} bytes)")
            return
        trace = self._trace(body, message.routing_key or "")
        seq = body.get("seq")
        if isinstance(seq, int) and trace.events and isinstance(trace.events[-1].get("seq"), int):
            trace.lost_events = max(0, seq - trace.events[-1]["seq"] - 1)
        trace.events.append(body)
        if self.printer is not None:
            self.printer.event(trace, body, message.routing_key or "", time.time())
        if body.get("type") == "session.ended":
            trace.ended = body
            task = asyncio.create_task(self._settle(trace))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        async with self._changed:
            self._changed.notify_all()

    async def _on_audio(self, message: AbstractIncomingMessage) -> None:
        body = self._decode(message)
        if body is None or not isinstance(body.get("audio"), bytes):
            return
        trace = self._trace(body, message.routing_key or "")
        direction = str(body.get("direction") or (message.routing_key or "").rsplit(".", 1)[-1])
        track = trace.audio.setdefault(direction, AudioTrack())
        if isinstance(body.get("codec"), dict):
            track.codec = body["codec"]
        track.chunks[int(body.get("seq", len(track.chunks)))] = body["audio"]
        async with self._changed:
            self._changed.notify_all()

    async def _settle(self, trace: SessionTrace) -> None:
        """Give the last audio chunks (published just before session.ended, on another queue) time to land."""

        def complete() -> bool:
            for direction in ("in", "out"):
                expected = trace.expected_bytes(direction)
                track = trace.audio.get(direction)
                if direction == "out" and track is None:
                    continue  # no mirror: nothing to wait for
                if expected is not None and (track.size if track else 0) < expected:
                    return False
            return True

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.settle_s), self._changed:
                await self._changed.wait_for(complete)
        self._finish(trace)
        async with self._changed:
            self._changed.notify_all()

    def _finish(self, trace: SessionTrace) -> None:
        trace.done = True
        for direction, track in trace.audio.items():
            pcm, trace.missing_chunks[direction] = track.pcm()
            if self.wav_dir is not None and pcm:
                channels = int(track.codec.get("channels", 1))
                path = self.wav_dir / f"{trace.key}-{direction}.wav"
                self.wav_dir.mkdir(parents=True, exist_ok=True)
                write_wav(
                    path,
                    pcm[: len(pcm) - len(pcm) % (2 * channels)],
                    int(track.codec.get("sample_rate", 8000)),
                    channels,
                )
                trace.wav[direction] = path
        if self.printer is not None:
            self.printer.summary(trace)
        self.finished_count += 1
        if self.keep_finished:
            self.finished.append(trace)
        self.traces.pop(trace.session_id, None)


# ---- the command line -------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--amqp-url",
        default=os.environ.get("BRIDGE_AMQP_URL", DEFAULT_AMQP_URL),
        help="broker URL (default $BRIDGE_AMQP_URL or the local guest broker)",
    )
    parser.add_argument(
        "--prefix",
        default=os.environ.get("BRIDGE_EXCHANGE_PREFIX", "rtvbp"),
        help="exchange prefix (default $BRIDGE_EXCHANGE_PREFIX or rtvbp)",
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--session", metavar="ID", help="watch one session (its call.session_id)")
    which.add_argument(
        "--pattern", help="watch a routing-key pattern, e.g. 'abc.#' or '#.dtmf' (default: all)"
    )
    parser.add_argument("--wav-dir", type=Path, metavar="DIR", help="write <session>-in.wav / -out.wav here")
    parser.add_argument("--jsonl", action="store_true", help="one JSON object per line instead of text")
    parser.add_argument("--sessions", type=int, metavar="N", help="exit after N sessions have ended")
    parser.add_argument("--duration", type=float, metavar="S", help="exit after S seconds")


async def tap_main(
    args: argparse.Namespace, out: TextIO = sys.stdout, ready: asyncio.Event | None = None
) -> int:
    """Run `rtvbp-bridge tap`; `ready` is set once the queues are bound (nothing published later is lost)."""
    if args.session:
        selection = Selection.session(args.session)
    elif args.pattern:
        selection = Selection.pattern(args.pattern)
    else:
        selection = Selection()
    printer: Printer = JsonLinesPrinter(out) if args.jsonl else PrettyPrinter(out)
    tap = Tap(args.amqp_url, args.prefix, selection, args.wav_dir, printer, keep_finished=False)
    try:
        await tap.start()
    except (OSError, AMQPException) as exc:
        print(f"tap: cannot reach the broker: {exc!r}", file=sys.stderr)
        return 1
    if not args.jsonl:
        print(
            f"tapping {selection.label} on {args.prefix}.events / {args.prefix}.audio (Ctrl-C to stop)",
            file=sys.stderr,
        )
    if ready is not None:
        ready.set()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM) if threading.current_thread() is threading.main_thread() else ()
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    waiters: list[asyncio.Task[Any]] = [asyncio.create_task(stop.wait())]
    if args.sessions:
        waiters.append(asyncio.create_task(tap.wait_sessions(args.sessions, timeout=None)))
    try:
        await asyncio.wait(waiters, timeout=args.duration, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        for sig in signals:
            loop.remove_signal_handler(sig)
        await tap.stop()
    return 0


def run(args: argparse.Namespace) -> int:
    return asyncio.run(tap_main(args))
