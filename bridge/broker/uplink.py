"""A session's audio onto the bus: re-chunked, bounded while the broker lags, every drop reported.

Caller audio (`in`) and the optional mirror of what was played (`out`) are cut into chunks of
`chunk_ms`. What the broker has not confirmed yet is bounded by `backlog_bytes`; a chunk beyond it is
dropped and counted into a `Gap` for its direction, reported as one `audio.gap` event when audio flows
again (or when the call ends): nothing is lost silently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from bridge.audio.chunker import Chunker
from bridge.audio.format import AudioFormat
from bridge.broker import messages
from bridge.broker.client import BrokerClient
from bridge.broker.publisher import Outgoing
from bridge.telemetry import Telemetry

Direction = Literal["in", "out"]
GapReason = Literal["broker_unavailable", "buffer_overflow"]


@dataclass(slots=True)
class Gap:
    """Chunks of one direction dropped in a row, not reported yet."""

    reason: GapReason  # decided when the gap begins: by the time it is reported the broker may be back
    first_seq: int
    last_seq: int
    dropped_chunks: int = 0
    dropped_bytes: int = 0

    def add(self, seq: int, size: int) -> None:
        self.last_seq = seq
        self.dropped_chunks += 1
        self.dropped_bytes += size

    def event_data(self, direction: Direction, fmt: AudioFormat) -> dict[str, Any]:
        return {
            "direction": direction,
            "reason": self.reason,
            "dropped_chunks": self.dropped_chunks,
            "dropped_bytes": self.dropped_bytes,
            "dropped_ms": int(fmt.ms_for_bytes(self.dropped_bytes)),
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
        }


class AudioUplink:
    def __init__(
        self,
        broker: BrokerClient,
        telemetry: Telemetry,
        fmt: AudioFormat,
        *,
        key: str,
        session_id: str,
        codec: dict[str, Any],
        headers: dict[str, Any],
        chunk_ms: int,
        backlog_ms: int,
        mirror_out: bool,
        report_gap: Callable[[dict[str, Any]], None],
    ) -> None:
        self.broker = broker
        self.fmt = fmt
        self.key = key
        self.session_id = session_id
        self.codec = codec
        self.headers = headers
        self.caller = Chunker(fmt, chunk_ms)
        self.mirror = Chunker(fmt, chunk_ms) if mirror_out else None
        self.backlog_limit = fmt.bytes_for_ms(backlog_ms)
        self.backlog_bytes = 0
        self.dropped_in_bytes = 0
        self.dropped_in_chunks = 0
        self._gaps: dict[Direction, Gap] = {}
        self._report_gap = report_gap
        self._latency = telemetry.chunk_publish_latency

    def caller_audio(self, data: bytes) -> None:
        for chunk in self.caller.push(data):
            self._publish("in", chunk.seq, chunk.ts_ms, chunk.data)

    def played_audio(self, frame: bytes) -> None:
        if self.mirror is not None:
            for chunk in self.mirror.push(frame):
                self._publish("out", chunk.seq, chunk.ts_ms, chunk.data)

    def flush(self) -> None:
        """The call ended: publish the partial last chunks, then report any gap still open."""
        streams: tuple[tuple[Chunker | None, Direction], ...] = ((self.caller, "in"), (self.mirror, "out"))
        for chunker, direction in streams:
            last = chunker.flush() if chunker is not None else None
            if last is not None:
                self._publish(direction, last.seq, last.ts_ms, last.data)
        for direction in list(self._gaps):
            self._end_gap(direction)

    @property
    def dropped_in_total(self) -> int:
        """Caller bytes that never reached the bus: gaps plus a trailing partial sample (unplayable)."""
        return self.dropped_in_bytes + self.caller.bytes_discarded

    def _publish(self, direction: Direction, seq: int, ts_ms: int, audio: bytes) -> None:
        size = len(audio)
        if self.backlog_bytes + size > self.backlog_limit:
            self._drop(direction, seq, size)
            return
        if direction in self._gaps:
            self._end_gap(direction)
        self.backlog_bytes += size
        body = messages.pack(messages.audio_body(self.session_id, direction, seq, ts_ms, self.codec, audio))
        props = messages.properties(body_type="audio", headers=self.headers)
        latency = self._latency

        def sent(seconds: float) -> None:
            self.backlog_bytes -= size
            latency.record(seconds)

        self.broker.audio.submit(
            Outgoing(self.broker.topology.audio, f"{self.key}.{direction}", body, props, on_sent=sent)
        )

    def _drop(self, direction: Direction, seq: int, size: int) -> None:
        """The broker is not keeping up (or away): drop this chunk, count it, keep it for the gap report."""
        if direction == "in":
            self.dropped_in_bytes += size
            self.dropped_in_chunks += 1
        gap = self._gaps.get(direction)
        if gap is None:
            away = not self.broker.ready() or self.broker.blocked
            reason: GapReason = "broker_unavailable" if away else "buffer_overflow"
            gap = self._gaps[direction] = Gap(reason, first_seq=seq, last_seq=seq)
        gap.add(seq, size)

    def _end_gap(self, direction: Direction) -> None:
        gap = self._gaps.pop(direction, None)
        if gap is not None:
            self._report_gap(gap.event_data(direction, self.fmt))
