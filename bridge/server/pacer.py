"""The pacer: a call's playout queue to its socket in real time, as a timer callback (never a task).

It runs 25-50 times a second per call: bound methods and instruments are looked up once, at construction,
and frames are written synchronously through the compat `FrameWriter`. What to send when is the sans-I/O
`Playout`'s decision; this class only turns its `poll`/`next_wakeup` into loop timers and socket writes.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State as WsState

from bridge.audio.playout import Playout
from bridge.compat.websockets import FrameWriter
from bridge.port import CallApp, CallStats
from bridge.telemetry import Telemetry

# The pacer holds audio in the playout buffer (bounded, cleared by barge-in) rather than in websockets'
# write buffer once this much is unsent: websockets' own write limit, where `send` would wait to drain.
PACER_HOLD_BYTES = 32 * 1024
LEAD_SAMPLE_EVERY = 25  # polls with audio: a lead sample every ~0.5 s of playout, not per frame


def unsent_bytes(ws: ServerConnection) -> int:
    """What websockets has written to the transport that the peer has not taken yet."""
    transport = ws.transport
    return int(transport.get_write_buffer_size()) if transport is not None else 0


class Pacer:
    """Sends a call's due playout frames and sleeps until the next ones; idle until `start`."""

    __slots__ = (
        "_audio_out",
        "_ctx",
        "_due",
        "_handle",
        "_mark_reached",
        "_on_failure",
        "_pace_now",
        "_polls",
        "_record_lead",
        "_running",
        "_stats",
        "_unsent",
        "_writer",
        "_ws",
        "playout",
    )

    def __init__(
        self,
        ws: ServerConnection,
        stats: CallStats,
        app: CallApp,
        telemetry: Telemetry,
        on_failure: Callable[[str], None],
    ) -> None:
        self._ws = ws
        self._writer = FrameWriter(ws)
        self._unsent = ws.transport.get_write_buffer_size  # set at connection_made, fixed for its life
        self._stats = stats
        self._audio_out = app.audio_out
        self._mark_reached = app.mark_reached
        self._record_lead = telemetry.playout_lead.record
        self._on_failure = on_failure  # a bug in a callback: the call ends, never the process
        self.playout: Playout | None = None
        self._ctx = contextvars.copy_context()
        self._handle: asyncio.Handle | None = None
        self._due = 0.0
        self._running = True
        self._polls = 0
        self._pace_now = self._pace  # the timer callback, bound once

    def start(self, playout: Playout, ctx: contextvars.Context) -> None:
        """Pace `playout`, running each wake-up in `ctx` (the call's log context)."""
        self.playout, self._ctx = playout, ctx

    def stop(self) -> None:
        """For good: nothing is sent after this (what is left is counted as dropped when the call ends)."""
        self._running = False
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def reschedule(self) -> None:
        """After new audio or a mark: make sure the pacer runs by the playout's next deadline.

        Something due already (new audio after silence, a mark at the end of what has played) is sent
        right here rather than one loop iteration later: the first frame of a reply goes out at once.
        """
        playout = self.playout
        if playout is None:
            return
        now = time.monotonic()
        due = playout.next_wakeup(now)
        if due is None or not self._running:
            return
        if due <= now:
            if self._handle is not None:
                self._handle.cancel()
                self._handle = None
            self._pace()
        else:
            self._schedule(due)

    def _schedule(self, due: float) -> None:
        handle = self._handle
        if not self._running or (handle is not None and self._due <= due):
            return  # an earlier (or equal) wake-up is already set
        if handle is not None:
            handle.cancel()
        loop = asyncio.get_running_loop()
        delay = due - time.monotonic()
        self._due = due
        if delay > 0:
            self._handle = loop.call_later(delay, self._pace_now, context=self._ctx)
        else:
            self._handle = loop.call_soon(self._pace_now, context=self._ctx)

    def _pace(self) -> None:
        """Send the frames that are due, then sleep until the next ones.

        Frames are written synchronously, one binary message each, under the same state check as
        `ws.send`. A voice that stops reading backpressures this call only: past PACER_HOLD_BYTES unsent,
        audio waits in the playout buffer (bounded; barge-in still clears it) and the pacer retries.
        """
        self._handle = None
        playout, ws = self.playout, self._ws
        if playout is None or ws.protocol.state is not WsState.OPEN:
            return  # closing: what is left is counted as dropped when the call ends
        now = time.monotonic()
        if self._unsent() > PACER_HOLD_BYTES:
            self._schedule(now + playout.fmt.frame_ms / 1000)
            return
        try:
            frames, marks = playout.poll(now)
            if frames:
                if not self._writer.write(frames):
                    return  # the socket broke; the reader sees it and ends the call
                stats = self._stats
                stats.frames_out += len(frames)
                stats.bytes_out += len(frames) * len(frames[0])
                audio_out = self._audio_out
                for frame in frames:
                    audio_out(frame)
            for mark in marks:
                self._mark_reached(mark)
            self._polls += 1
            if frames and self._polls % LEAD_SAMPLE_EVERY == 0:
                self._record_lead(playout.lead_ms)
        except Exception:
            self._on_failure("playout")
            return
        due = playout.next_wakeup(time.monotonic())
        if due is not None:
            self._schedule(due)
