"""The call port: the narrow, typed seam between a live call and its bus link.

`bridge/server` (the WebSocket side) implements `CallControl`: what the bus side may ask of a call.
`bridge/broker` (the bus side) implements `CallApp`: what a call tells the bus. Neither side imports the
other; both import this module, and `bridge/join.py` wires one call to one link.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from opentelemetry.trace import Span

from bridge.audio.playout import ClearResult, MarkReached
from bridge.errors import CodedError
from bridge.protocol.session import (
    EndReason,
    InitializeRequested,
    RequestSettled,
    SessionCounters,
    VoiceEvent,
)


class CallRefused(CodedError):
    """The bus side cannot take the call; session.initialize is answered with this error."""


class CommandError(CodedError):
    """A downstream command failed; `code` follows the AMQP contract's reply codes."""


@dataclass(slots=True)
class CallStats:
    """Audio that crossed the socket, both ways."""

    frames_in: int = 0
    bytes_in: int = 0
    frames_out: int = 0
    bytes_out: int = 0
    dropped_out_bytes: int = 0


@dataclass(frozen=True, slots=True)
class CallSummary:
    """How a call ended (or stands, for a call refused during set-up), for its session.ended."""

    reason: EndReason
    detail: str
    duration_ms: int
    stats: CallStats
    protocol: SessionCounters


@dataclass(frozen=True, slots=True)
class AudioQueued:
    queued_bytes: int  # bytes this command added to the playout queue
    backlog_ms: int  # the whole queue still to be sent, after the lead already on the wire


@dataclass(frozen=True, slots=True)
class Cleared:
    bridge: ClearResult  # what the bridge's own playout queue dropped
    voice_bytes: int  # what the voice reported dropping from its buffer


class CallControl(Protocol):
    """What the bus side may ask of a live call. Every failure is a `CommandError` with its code."""

    @property
    def span(self) -> Span | None:
        """The call's span: the parent of the bus side's spans for this call."""

    def enqueue_audio(self, audio: bytes) -> AudioQueued: ...

    def add_mark(self, name: str) -> None: ...

    async def clear(self) -> Cleared:
        """Barge-in: the bridge's queue at once, then the voice's buffer."""

    async def request(self, method: str, params: Any, parent: Span | None = None) -> RequestSettled:
        """An application->voice request, settled by answer, error, timeout or close."""

    def send_event(self, name: str, data: Any) -> None: ...

    def end(self, code: int, reason: str, end_reason: EndReason, detail: str = "") -> None:
        """Close the socket with `code`; the call ends with `end_reason`."""

    def mark_ending(self, reason: EndReason, detail: str) -> None:
        """The reason the call's end will report, whatever closes it next."""

    def summary(self, reason: EndReason, detail: str) -> CallSummary:
        """The call's counters so far, as if it ended now (a call refused during set-up)."""


class CallApp(Protocol):
    """What a call tells its bus side. The broker link implements it; tests may plug their own."""

    async def start(self, call: CallControl, init: InitializeRequested) -> None:
        """Called on session.initialize; raise CallRefused to refuse. The answer waits for this."""

    def voice_event(self, event: VoiceEvent) -> None: ...

    def audio_in(self, data: bytes) -> None: ...

    def mark_reached(self, mark: MarkReached) -> None: ...

    def audio_out(self, frame: bytes) -> None:
        """A frame was sent to the caller (for the optional `.out` mirror)."""

    async def end(self, summary: CallSummary) -> None:
        """The call is over (exactly once), with its final counters."""
