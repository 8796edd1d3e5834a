"""One call's message stream, without I/O: de-duplication by `seq`, gap detection, end of audio.

The bridge publishes at least once (after a broker blip it republishes what was unconfirmed), and a
queue delivers one call's events, and its audio, in order. So a `seq` below the next expected one is
a duplicate, and one above it means messages were lost: never hidden, always turned into a gap. Events
and audio travel on different exchanges, so `session.ended` may overtake the last chunks: the call's
audio is complete when the stream position reaches the `bytes_in` that `session.ended` counted.

Any source of a call's messages (the live queues today, a replay stream tomorrow) feeds this class,
and overlap between sources is harmless because it is de-duplicated here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rtvbp_consumer.events import AudioGap, Codec, EventGap, SessionEnded


@dataclass
class CallStream:
    codec: Codec
    next_audio_seq: int = 0
    next_event_seq: int = 1  # session.started (seq 0) created the stream
    position_ms: float = 0.0  # caller stream position after the last delivered chunk
    received_bytes: int = 0
    missing_bytes: int = 0  # every caller byte known lost, whoever noticed
    duplicates: int = 0
    ended: SessionEnded | None = None
    _bridge_gaps: list[tuple[int, int]] = field(default_factory=list)  # seq ranges the bridge reported

    def accept_chunk(self, seq: int, ts: int, audio: bytes) -> tuple[bool, AudioGap | None]:
        """Should this chunk be delivered, and was something missing before it?"""
        if seq < self.next_audio_seq:
            self.duplicates += 1
            return False, None
        gap = None
        if seq > self.next_audio_seq:
            gap = self._chunk_gap(self.next_audio_seq, seq - 1, ts - self.position_ms)
        self.next_audio_seq = seq + 1
        self.position_ms = ts + len(audio) / self.codec.bytes_per_ms
        self.received_bytes += len(audio)
        return True, gap

    def _chunk_gap(self, first: int, last: int, lost_ms: float) -> AudioGap | None:
        lost_bytes = max(0, round(lost_ms * self.codec.bytes_per_ms))
        self.missing_bytes += lost_bytes
        if any(lo <= first and last <= hi for lo, hi in self._bridge_gaps):
            return None  # the bridge's audio.gap event already told this story
        data = {"first_seq": first, "last_seq": last, "dropped_bytes": lost_bytes}
        return AudioGap(
            "audio.gap",
            -1,
            0,
            data,
            direction="in",
            reason="not_delivered",
            dropped_chunks=last - first + 1,
            dropped_bytes=lost_bytes,
            dropped_ms=round(lost_ms),
            first_seq=first,
            last_seq=last,
            detected_by="consumer",
        )

    def accept_event(self, seq: int) -> tuple[bool, EventGap | None]:
        """Should this event be delivered, and were events missing before it?"""
        if seq < self.next_event_seq:
            self.duplicates += 1
            return False, None
        gap = None
        if seq > self.next_event_seq:
            gap = EventGap("event.gap", -1, 0, {}, first_seq=self.next_event_seq, last_seq=seq - 1)
        self.next_event_seq = seq + 1
        return True, gap

    def note_bridge_gap(self, gap: AudioGap) -> None:
        if gap.direction == "in" and gap.first_seq is not None and gap.last_seq is not None:
            self._bridge_gaps.append((gap.first_seq, gap.last_seq))

    @property
    def expected_bytes(self) -> int | None:
        """All caller bytes of the call (known once it has ended). An end without counters (a lost
        replica's call, ended by another) means nothing more can be counted on: what came is all."""
        if self.ended is None:
            return None
        return self.ended.counters.get("bytes_in", self.received_bytes + self.missing_bytes)

    @property
    def audio_complete(self) -> bool:
        expected = self.expected_bytes
        return expected is not None and self.received_bytes + self.missing_bytes >= expected

    def tail_gap(self) -> AudioGap | None:
        """After giving up waiting: the end of the call's audio that never came, as a gap."""
        expected = self.expected_bytes
        if expected is None or self.audio_complete:
            return None
        lost_bytes = expected - self.received_bytes - self.missing_bytes
        self.missing_bytes += lost_bytes
        return AudioGap(
            "audio.gap",
            -1,
            0,
            {"first_seq": self.next_audio_seq, "dropped_bytes": lost_bytes},
            direction="in",
            reason="not_delivered",
            dropped_chunks=0,  # unknown: only the byte count is
            dropped_bytes=lost_bytes,
            dropped_ms=round(lost_bytes / self.codec.bytes_per_ms),
            first_seq=self.next_audio_seq,
            last_seq=None,
            detected_by="consumer",
        )
