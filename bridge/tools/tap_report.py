"""What `rtvbp-bridge tap` saw of each session, and the two ways it prints it (pretty or JSON lines)."""

from __future__ import annotations

import datetime
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO


@dataclass
class AudioTrack:
    chunks: dict[int, bytes] = field(default_factory=dict)  # by seq
    codec: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return sum(map(len, self.chunks.values()))

    @property
    def bytes_per_second(self) -> int:
        return int(self.codec.get("sample_rate", 8000)) * int(self.codec.get("channels", 1)) * 2

    def pcm(self) -> tuple[bytes, int]:
        """(pcm in seq order, missing chunk count); a missing chunk becomes silence of a neighbour's size."""
        if not self.chunks:
            return b"", 0
        parts, missing, size = [], 0, len(next(iter(self.chunks.values())))
        for seq in range(max(self.chunks) + 1):
            chunk = self.chunks.get(seq)
            if chunk is None:
                missing += 1
                parts.append(bytes(size))
            else:
                parts.append(chunk)
                size = len(chunk)
        return b"".join(parts), missing


@dataclass
class SessionTrace:
    """Everything the tap saw of one session."""

    session_id: str
    key: str
    first_seen: float = field(default_factory=time.time)
    events: list[dict[str, Any]] = field(default_factory=list)
    audio: dict[str, AudioTrack] = field(default_factory=dict)  # "in" / "out"
    ended: dict[str, Any] | None = None
    lost_events: int = 0
    wav: dict[str, Path] = field(default_factory=dict)
    missing_chunks: dict[str, int] = field(default_factory=dict)
    done: bool = False

    def event_types(self) -> list[str]:
        return [e["type"] for e in self.events]

    def expected_bytes(self, direction: str) -> int | None:
        """Audio bytes the bridge says it published for `direction`, from session.ended's counters."""
        counters = (self.ended or {}).get("data", {}).get("counters") or {}
        if direction == "in" and "bytes_in" in counters:
            return int(counters["bytes_in"]) - int(counters.get("dropped_in_bytes", 0))
        if direction == "out" and "bytes_out" in counters:
            return int(counters["bytes_out"])
        return None


class Printer(Protocol):
    def event(self, trace: SessionTrace, body: dict[str, Any], routing_key: str, received: float) -> None: ...

    def summary(self, trace: SessionTrace) -> None: ...

    def note(self, text: str) -> None: ...


# ---- output ------------------------------------------------------------------------------------------------


def _kv(data: dict[str, Any], *keys: str) -> str:
    return " ".join(f"{k}={data[k]}" for k in keys if data.get(k) is not None)


def describe_event(body: dict[str, Any]) -> str:
    """The interesting fields of an event, one line."""
    data = body.get("data")
    data = data if isinstance(data, dict) else {}
    kind = body.get("type")
    if kind == "session.started":
        call, codec = data.get("call") or {}, data.get("audio_codec") or {}
        return f"codec={codec.get('id')} {_kv(call, 'from', 'to')} instance={data.get('instance')}"
    if kind == "session.updated":
        return f"codec={(data.get('audio_codec') or {}).get('id')}"
    if kind == "dtmf":
        return f"digit={data.get('digit')}"
    if kind == "call.hangup":
        return _kv(data, "reason") or "(no reason)"
    if kind == "playout.mark":
        return _kv(data, "name", "position_ms")
    if kind == "audio.gap":
        return _kv(data, "direction", "reason", "dropped_chunks", "dropped_ms")
    if kind == "command.rejected":
        return _kv(data, "command_type", "code", "message")
    if kind == "session.ended":
        counters = data.get("counters") or {}
        detail = f" detail={data['detail']!r}" if data.get("detail") else ""
        seconds = int(data.get("duration_ms", 0)) / 1000
        return (
            f"reason={data.get('reason')}{detail} duration={seconds:.2f}s "
            f"{_kv(counters, 'frames_in', 'frames_out', 'commands_received', 'commands_rejected')}"
        )
    text = json.dumps(data, default=str, separators=(",", ":"))
    return text if len(text) <= 100 else text[:99] + "…"


class PrettyPrinter:
    """Human lines; `relative` shows seconds since the session's first message instead of the clock."""

    def __init__(self, out: TextIO, relative: bool = False, indent: str = "") -> None:
        self.out, self.relative, self.indent = out, relative, indent

    def _when(self, trace: SessionTrace, received: float) -> str:
        if self.relative:
            return f"+{received - trace.first_seen:.3f}s".rjust(9)
        return datetime.datetime.fromtimestamp(received).strftime("%H:%M:%S.%f")[:-3]

    def event(self, trace: SessionTrace, body: dict[str, Any], routing_key: str, received: float) -> None:
        lost = f"  ({trace.lost_events} events lost before this one)" if trace.lost_events else ""
        print(
            f"{self.indent}{self._when(trace, received)}  {trace.session_id}  #{body.get('seq')}  "
            f"{body.get('type', '?'):<16} {describe_event(body)}{lost}",
            file=self.out,
            flush=True,
        )

    def summary(self, trace: SessionTrace) -> None:
        parts = []
        for direction in ("in", "out"):
            track = trace.audio.get(direction)
            if track is None:
                if direction == "out":
                    parts.append(
                        "out: none seen (the bridge mirrors played audio with BRIDGE_MIRROR_OUT=true)"
                    )
                else:
                    parts.append("in: none")
                continue
            seconds = track.size / track.bytes_per_second
            missing = trace.missing_chunks.get(direction, 0)
            where = f" -> {trace.wav[direction]}" if direction in trace.wav else ""
            gaps = f", {missing} chunks missing (silence written)" if missing else ""
            parts.append(
                f"{direction}: {len(track.chunks)} chunks, {seconds:.2f} s "
                f"{track.codec.get('id', '')}{gaps}{where}"
            )
        print(
            f"{self.indent}{self._when(trace, time.time())}  {trace.session_id}  audio  {' | '.join(parts)}",
            file=self.out,
            flush=True,
        )

    def note(self, text: str) -> None:
        print(f"{self.indent}{text}", file=self.out, flush=True)


class JsonLinesPrinter:
    """One JSON object per line: events as received, `tap.session_audio` per ended session."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def _emit(self, obj: dict[str, Any]) -> None:
        print(json.dumps(obj, default=str, ensure_ascii=False), file=self.out, flush=True)

    def event(self, trace: SessionTrace, body: dict[str, Any], routing_key: str, received: float) -> None:
        self._emit({"received": round(received, 3), "routing_key": routing_key, **body})

    def summary(self, trace: SessionTrace) -> None:
        audio: dict[str, Any] = {}
        for direction, track in trace.audio.items():
            audio[direction] = {
                "chunks": len(track.chunks),
                "bytes": track.size,
                "seconds": round(track.size / track.bytes_per_second, 3),
                "codec": track.codec.get("id"),
                "missing_chunks": trace.missing_chunks.get(direction, 0),
                "wav": str(trace.wav[direction]) if direction in trace.wav else None,
            }
        self._emit(
            {
                "type": "tap.session_audio",
                "session_id": trace.session_id,
                "received": round(time.time(), 3),
                "events": len(trace.events),
                "lost_events": trace.lost_events,
                "audio": audio,
            }
        )

    def note(self, text: str) -> None:
        self._emit({"type": "tap.note", "message": text})


# ---- the tap ----------------------------------------------------------------------------------------------
