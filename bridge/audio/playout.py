"""Downstream audio to the caller: exact frames, real-time pacing with a bounded lead, marks, barge-in.

Sans-I/O: the caller passes the time (monotonic seconds) into every call and sends what `poll` returns;
`next_wakeup` says when to call `poll` again.

The clock. Audio arriving into an idle playout *anchors* a schedule: frame k of the run plays at
`anchor + k * frame`. A frame is sent once sending it keeps the sent audio at most `lead_ms` ahead of
real time, i.e. when `now >= anchor + (k + 1) * frame - lead` (with a 100 ms lead the first 5 frames of
20 ms go at once, then one every 20 ms). The voice buffers that lead, so a late wake-up of our loop or a
late `audio` command within it is inaudible.

Decisions:

* **Late loop, full frames waiting**: every due frame goes out at once and the schedule is kept. Never
  re-anchor here: that would turn each event-loop stall into permanent added latency.
* **Stream ran dry** (nothing but at most a partial frame queued and the play time of everything sent
  has passed) and audio arrives: re-anchor at the arrival time, since the voice has played everything
  and the gap is already heard. If the gap since the stream ran dry is shorter than `underrun_gap_ms`
  the producer fell behind mid-utterance and `underruns` counts it; a longer gap is the next utterance
  after an idle spell, which is normal. Audio arriving before the stream ran dry continues the schedule.
* **Partial last frame**: held as long as the voice still has audio to play, so the rest of it can
  still arrive; at its play time it goes out padded with zero bytes. Only that frame is ever padded.
* **Marks** fire at their *play* time (all audio before them has been played in real time, not merely
  sent). A mark added with nothing left to play fires on the next poll. `position_ms` is the played
  stream position, counting audio (and padding) sent, never idle gaps.
* **clear** drops the unsent audio and all pending marks (the voice is told to drop its buffer too) and
  makes the playout idle, so the next audio anchors afresh without counting an underrun.

The model assumes the voice plays what it receives in real time. After a stall that made frames late
the voice plays behind this clock, so marks may fire early by up to the stall.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from bridge.audio.format import AudioFormat

# Float slack for comparing times computed from the anchor (fake clocks hit frame boundaries exactly).
_EPS = 1e-6


class PlayoutFull(Exception):
    """Enqueueing would exceed the playout bound; nothing was enqueued."""


@dataclass(frozen=True, slots=True)
class MarkReached:
    name: str
    position_ms: int  # played stream position


@dataclass(frozen=True, slots=True)
class ClearResult:
    bytes_dropped: int
    marks_dropped: tuple[str, ...]


class Playout:
    __slots__ = (
        "_anchor",
        "_anchor_pos",
        "_buf",
        "_frame_bytes",
        "_frame_s",
        "_last_now",
        "_lead_s",
        "_marks",
        "_max_bytes",
        "_run_frames",
        "_underrun_gap_s",
        "batch_frames",
        "bytes_padded",
        "bytes_sent",
        "fmt",
        "frames_sent",
        "max_buffer_ms",
        "max_lead_ms",
        "underrun_gap_ms",
        "underruns",
    )

    def __init__(
        self,
        fmt: AudioFormat,
        lead_ms: int = 100,
        max_buffer_ms: int = 60_000,
        *,
        underrun_gap_ms: int = 500,
        batch_frames: int = 1,
    ) -> None:
        if lead_ms < fmt.frame_ms:
            raise ValueError(f"lead_ms must be at least one frame ({fmt.frame_ms} ms), got {lead_ms}")
        if not 1 <= batch_frames <= lead_ms // fmt.frame_ms:
            raise ValueError(f"batch_frames must be 1..{lead_ms // fmt.frame_ms} for a {lead_ms} ms lead")
        if max_buffer_ms < fmt.frame_ms:
            raise ValueError(f"max_buffer_ms must be at least {fmt.frame_ms} ms, got {max_buffer_ms}")
        self.fmt = fmt
        self.max_lead_ms = lead_ms
        self.max_buffer_ms = max_buffer_ms
        self.underrun_gap_ms = underrun_gap_ms
        # Waking once per `batch_frames` frames (sending them together) halves the pacer's wake-ups at 2;
        # the lead then moves between lead - batch frames and lead (80..100 ms becomes 60..100), never above.
        self.batch_frames = batch_frames
        self._frame_bytes = fmt.bytes_per_frame
        self._frame_s = fmt.frame_ms / 1000
        self._lead_s = lead_ms / 1000
        self._underrun_gap_s = underrun_gap_ms / 1000
        self._max_bytes = fmt.bytes_for_ms(max_buffer_ms)
        self._buf = bytearray()  # queued, not yet sent
        self._marks: deque[tuple[int, str]] = deque()  # (stream byte position, name), ascending
        # Schedule of the current run: frame `_run_frames` (the next to send) plays at
        # `_anchor + _run_frames * frame`; `_anchor_pos` is the stream byte position played at `_anchor`.
        self._anchor: float | None = None  # None = idle, no schedule
        self._anchor_pos = 0
        self._run_frames = 0
        self._last_now = 0.0
        self.frames_sent = 0
        self.bytes_sent = 0  # whole frames, padding included: the played stream length
        self.bytes_padded = 0
        self.underruns = 0

    # ---- state ---------------------------------------------------------------------------------------

    @property
    def queued_bytes(self) -> int:
        return len(self._buf)

    @property
    def queued_ms(self) -> float:
        return self.fmt.ms_for_bytes(len(self._buf))

    @property
    def pending_marks(self) -> int:
        return len(self._marks)

    @property
    def lead_ms(self) -> float:
        """How far the sent audio is ahead of real time, as of the last call that passed the time."""
        if self._anchor is None:
            return 0.0
        return max(0.0, self._sent_end() - self._last_now) * 1000

    # ---- commands ------------------------------------------------------------------------------------

    def enqueue(self, audio: bytes, now: float) -> int:
        """Queue audio to play after everything queued so far; returns the bytes queued."""
        size = len(audio)
        self._last_now = now
        if not size:
            return 0
        buf = self._buf
        if len(buf) + size > self._max_bytes:
            fmt = self.fmt
            raise PlayoutFull(
                f"{fmt.ms_for_bytes(size):.0f} ms of audio would exceed the {self.max_buffer_ms} ms bound "
                f"({fmt.ms_for_bytes(len(buf)):.0f} ms queued)"
            )
        if self._anchor is None:
            self._reanchor(now)
        elif len(buf) < self._frame_bytes and now > self._sent_end() + _EPS:
            # The voice has played everything we sent: the gap is already heard, start a new run now.
            if now - self._sent_end() < self._underrun_gap_s:
                self.underruns += 1
            self._reanchor(now)
        buf += audio
        return size

    def add_mark(self, name: str, now: float) -> None:
        """Mark the point after all audio queued so far."""
        self._last_now = now
        self._marks.append((self.bytes_sent + len(self._buf), name))

    def clear(self, now: float) -> ClearResult:
        """Barge-in: drop all unsent audio and pending marks; the next audio starts a fresh run."""
        self._last_now = now
        result = ClearResult(len(self._buf), tuple(name for _, name in self._marks))
        self._buf = bytearray()
        self._marks.clear()
        self._anchor = None
        return result

    # ---- clock ---------------------------------------------------------------------------------------

    def poll(self, now: float) -> tuple[list[bytes], list[MarkReached]]:
        """Frames to send now (each exactly one frame long) and the marks whose play time has come."""
        self._last_now = now
        frames: list[bytes] = []
        anchor = self._anchor
        if anchor is not None and self._buf:
            buf = self._buf
            size = self._frame_bytes
            frame_s = self._frame_s
            limit = now + self._lead_s + _EPS
            run = self._run_frames
            count = 0
            # Frame k may go when its end is within the lead; a late loop sends all due frames (catch-up).
            while (count + 1) * size <= len(buf) and anchor + (run + count + 1) * frame_s <= limit:
                count += 1
            if count:
                with memoryview(buf) as view:
                    frames = [bytes(view[i : i + size]) for i in range(0, count * size, size)]
                del buf[: count * size]
                run += count
            if 0 < len(buf) < size and anchor + run * frame_s <= now + _EPS:
                # The last partial frame is due to play and nothing completed it: pad it.
                pad = size - len(buf)
                frames.append(bytes(buf) + bytes(pad))
                buf.clear()
                self.bytes_padded += pad
                run += 1
            self._run_frames = run
            self.frames_sent += len(frames)
            self.bytes_sent += len(frames) * size
        return frames, self._due_marks(now)

    def next_wakeup(self, now: float) -> float | None:
        """When `poll` next has something to do (may be <= now: poll at once); None when idle."""
        candidates: list[float] = []
        anchor = self._anchor
        if self._marks:
            mark_time = self._mark_time(self._marks[0][0], now)
            if mark_time is not None:
                candidates.append(mark_time)
        if anchor is not None and self._buf:
            full = len(self._buf) // self._frame_bytes
            if full:
                ahead = min(self.batch_frames, full)
                candidates.append(anchor + (self._run_frames + ahead) * self._frame_s - self._lead_s)
            else:
                candidates.append(anchor + self._run_frames * self._frame_s)
        return min(candidates) if candidates else None

    # ---- internals -----------------------------------------------------------------------------------

    def _reanchor(self, now: float) -> None:
        self._anchor = now
        self._anchor_pos = self.bytes_sent
        self._run_frames = 0

    def _sent_end(self) -> float:
        """When the voice will have played everything sent (meaningful only while anchored)."""
        assert self._anchor is not None
        return self._anchor + self._run_frames * self._frame_s

    def _mark_time(self, position: int, now: float) -> float | None:
        """Play time of a stream position; None until all audio before it has been sent."""
        if position > self.bytes_sent:
            return None
        if self._anchor is None:
            return now  # nothing is playing: due at once
        return self._anchor + (position - self._anchor_pos) / self.fmt.bytes_per_second

    def _due_marks(self, now: float) -> list[MarkReached]:
        marks = self._marks
        if not marks:
            return []
        reached: list[MarkReached] = []
        fmt = self.fmt
        while marks:
            position, name = marks[0]
            mark_time = self._mark_time(position, now)
            if mark_time is None or mark_time > now + _EPS:
                break
            marks.popleft()
            samples = position // fmt.block_align
            reached.append(MarkReached(name, samples * 1000 // fmt.sample_rate))
        return reached
