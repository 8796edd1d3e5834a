"""Typed views of the bridge's upstream events (docs/amqp-contract.md), plus the gaps this library finds.

Every event keeps the bridge's `seq`, `ts` (epoch ms) and raw `data`, so fields added to the contract
later are never out of reach. Types this version does not know arrive as plain `Event`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Codec:
    """The call's negotiated audio format (L16 little-endian, interleaved when `channels` > 1)."""

    name: str
    sample_rate: int
    channels: int = 1
    bit_depth: int = 16
    id: str = ""

    @property
    def bytes_per_ms(self) -> float:
        return self.sample_rate * self.channels * (self.bit_depth // 8) / 1000

    @classmethod
    def from_map(cls, codec: dict[str, Any]) -> Codec:
        return cls(
            name=str(codec.get("name", "L16")),
            sample_rate=int(codec["sample_rate"]),
            channels=int(codec.get("channels", 1)),
            bit_depth=int(codec.get("bit_depth", 16)),
            id=str(codec.get("id", "")),
        )


@dataclass(frozen=True, slots=True)
class Event:
    """An upstream event; subclasses give the known types named fields."""

    type: str
    seq: int
    ts: int
    data: dict[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class SessionUpdated(Event):
    codec: Codec


@dataclass(frozen=True, slots=True)
class Dtmf(Event):
    digit: str


@dataclass(frozen=True, slots=True)
class CallHangup(Event):
    reason: str | None


@dataclass(frozen=True, slots=True)
class AudioInfo(Event):
    pass


@dataclass(frozen=True, slots=True)
class PlayoutMark(Event):
    name: str
    position_ms: int


@dataclass(frozen=True, slots=True)
class AudioGap(Event):
    """Caller audio that will never arrive, with its size.

    `detected_by` is "bridge" for the bridge's own `audio.gap` event (it had to drop audio; `reason`
    says why) and "consumer" when this library saw chunks missing from the stream (`reason`
    "not_delivered": lost on the way, e.g. while the broker connection was down). A range the bridge
    already reported is not reported again by the library.
    """

    direction: str
    reason: str
    dropped_chunks: int
    dropped_bytes: int
    dropped_ms: int
    first_seq: int | None
    last_seq: int | None
    detected_by: str = "bridge"


@dataclass(frozen=True, slots=True)
class EventGap(Event):
    """Events of this call (seq `first_seq`..`last_seq`) that never arrived (library-detected)."""

    first_seq: int
    last_seq: int


@dataclass(frozen=True, slots=True)
class CommandRejected(Event):
    """A command sent without waiting for its reply failed; waiting commands raise CommandError instead."""

    command_type: str
    code: int
    message: str
    correlation_id: str | None


@dataclass(frozen=True, slots=True)
class SessionEnded(Event):
    """The call is over; `counters` summarise it (bytes_in, dropped_in_bytes, ...)."""

    reason: str
    duration_ms: int
    counters: dict[str, int]


def parse_event(body: dict[str, Any]) -> Event:
    """Build the typed event for a decoded `rtvbp.events` body; raises KeyError/TypeError/ValueError."""
    kind, ts = str(body["type"]), int(body.get("ts") or 0)
    # A session.ended published by another replica for a lost one (reason `bridge_lost`) has no seq.
    seq = -1 if kind == "session.ended" and body.get("seq") is None else int(body["seq"])
    data = body.get("data") or {}
    if not isinstance(data, dict):
        raise TypeError(f"event data is {type(data).__name__}, not a map")
    if kind == "dtmf":
        return Dtmf(kind, seq, ts, data, digit=str(data["digit"]))
    if kind == "session.updated":
        return SessionUpdated(kind, seq, ts, data, codec=Codec.from_map(data["audio_codec"]))
    if kind == "call.hangup":
        reason = data.get("reason")
        return CallHangup(kind, seq, ts, data, reason=None if reason is None else str(reason))
    if kind == "audio.info":
        return AudioInfo(kind, seq, ts, data)
    if kind == "playout.mark":
        return PlayoutMark(kind, seq, ts, data, name=str(data["name"]), position_ms=int(data["position_ms"]))
    if kind == "audio.gap":
        return AudioGap(
            kind,
            seq,
            ts,
            data,
            direction=str(data.get("direction", "in")),
            reason=str(data.get("reason", "")),
            dropped_chunks=int(data.get("dropped_chunks", 0)),
            dropped_bytes=int(data.get("dropped_bytes", 0)),
            dropped_ms=int(data.get("dropped_ms", 0)),
            first_seq=_optional_int(data.get("first_seq")),
            last_seq=_optional_int(data.get("last_seq")),
        )
    if kind == "command.rejected":
        return CommandRejected(
            kind,
            seq,
            ts,
            data,
            command_type=str(data.get("command_type", "")),
            code=int(data.get("code", 0)),
            message=str(data.get("message", "")),
            correlation_id=data.get("correlation_id"),
        )
    if kind == "session.ended":
        counters = data.get("counters") or {}
        return SessionEnded(
            kind,
            seq,
            ts,
            data,
            reason=str(data.get("reason", "")),
            duration_ms=int(data.get("duration_ms", 0)),
            counters={str(k): int(v) for k, v in counters.items()},
        )
    return Event(kind, seq, ts, data)


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)
