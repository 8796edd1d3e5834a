"""Playout with a fake clock: exact frames, pacing within the lead, catch-up, padding, marks, clear, bound."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.audio.format import AudioFormat
from bridge.audio.playout import MarkReached, Playout, PlayoutFull

FMT = AudioFormat(8000)
FRAME = FMT.bytes_per_frame  # 320
T0 = 1000.0


def _audio(n: int) -> bytes:
    """Audio without zero bytes, so padding is recognisable and order is checkable."""
    return bytes(1 + i * 7 % 251 for i in range(n))


@dataclass
class Run:
    sends: list[tuple[float, bytes]] = field(default_factory=list)
    marks: list[tuple[float, MarkReached]] = field(default_factory=list)

    @property
    def frames(self) -> list[bytes]:
        return [frame for _, frame in self.sends]

    @property
    def data(self) -> bytes:
        return b"".join(self.frames)


def drive(playout: Playout, start: float, until: float, run: Run | None = None) -> Run:
    """An ideal I/O loop: poll at `start`, then exactly at every next_wakeup up to `until`."""
    run = run or Run()
    now = start
    for _ in range(100_000):
        frames, marks = playout.poll(now)
        run.sends += [(now, f) for f in frames]
        run.marks += [(now, m) for m in marks]
        wake = playout.next_wakeup(now)
        if wake is None or wake > until:
            return run
        # A wake-up at or before now must be because poll has work now, never a busy spin.
        assert wake > now or frames or marks or playout.poll(now) != ([], [])
        now = max(now, wake)
    raise AssertionError("the loop never went idle")


def test_nothing_is_sent_while_nothing_is_queued() -> None:
    playout = Playout(FMT)
    assert playout.poll(T0) == ([], [])
    assert playout.next_wakeup(T0) is None
    assert playout.frames_sent == 0


def test_first_frames_fill_the_lead_then_one_frame_per_slot() -> None:
    playout = Playout(FMT, lead_ms=100)
    audio = _audio(FRAME * 50)  # 1 s
    assert playout.enqueue(audio, T0) == len(audio)
    run = drive(playout, T0, T0 + 5)
    assert run.data == audio
    assert all(len(f) == FRAME for f in run.frames)
    assert len(run.frames) == playout.frames_sent == 50
    assert playout.bytes_sent == len(audio)
    assert [t for t, _ in run.sends[:5]] == [T0] * 5
    for i, (sent_at, _) in enumerate(run.sends):
        # Frame i is sent once its end is within 100 ms of real time: slot end minus the lead.
        assert sent_at == pytest.approx(T0 + max(0.0, (i + 1) * 0.020 - 0.100))
    assert playout.bytes_padded == 0
    assert playout.underruns == 0
    assert playout.queued_bytes == 0


def test_a_frame_is_not_sent_before_its_slot() -> None:
    playout = Playout(FMT, lead_ms=100)
    playout.enqueue(_audio(FRAME * 10), T0)
    assert len(playout.poll(T0)[0]) == 5
    assert playout.next_wakeup(T0) == pytest.approx(T0 + 0.020)
    assert playout.poll(T0 + 0.019)[0] == []
    assert len(playout.poll(T0 + 0.020)[0]) == 1
    assert playout.lead_ms == pytest.approx(100.0)
    assert playout.queued_bytes == 4 * FRAME
    assert playout.queued_ms == pytest.approx(80.0)


def test_a_lead_that_is_not_a_whole_number_of_frames_never_exceeds_it() -> None:
    playout = Playout(FMT, lead_ms=50)
    playout.enqueue(_audio(FRAME * 10), T0)
    assert len(playout.poll(T0)[0]) == 2  # 40 ms; a third frame would be 60 ms ahead
    assert playout.next_wakeup(T0) == pytest.approx(T0 + 0.010)


def test_a_late_loop_catches_up_without_re_anchoring() -> None:
    playout = Playout(FMT, lead_ms=100)
    audio = _audio(FRAME * 50)
    playout.enqueue(audio, T0)
    assert len(playout.poll(T0)[0]) == 5
    frames, _ = playout.poll(T0 + 0.5)  # the loop stalled for half a second
    assert len(frames) == 30 - 5  # every frame whose end is within 0.6 s goes at once
    # The schedule is unchanged: the next frame is still due at its original slot.
    assert playout.next_wakeup(T0 + 0.5) == pytest.approx(T0 + 31 * 0.020 - 0.100)
    run = drive(playout, T0 + 0.5, T0 + 5)
    assert playout.frames_sent == 50
    assert run.sends[-1][0] == pytest.approx(T0 + 50 * 0.020 - 0.100)
    assert playout.underruns == 0


def test_a_loop_stalled_past_the_play_time_sends_everything_due() -> None:
    playout = Playout(FMT, lead_ms=100)
    playout.enqueue(_audio(FRAME * 50), T0)
    frames, _ = playout.poll(T0 + 2.0)
    assert len(frames) == 50
    assert playout.underruns == 0


def test_only_the_last_partial_frame_is_padded_at_its_play_time() -> None:
    playout = Playout(FMT, lead_ms=100)
    audio = _audio(FRAME * 3 + 50)
    playout.enqueue(audio, T0)
    assert len(playout.poll(T0)[0]) == 3  # the partial frame is held while audio before it plays
    assert playout.next_wakeup(T0) == pytest.approx(T0 + 0.060)
    assert playout.poll(T0 + 0.059)[0] == []
    (frame,), _ = playout.poll(T0 + 0.060)
    assert frame == audio[3 * FRAME :] + bytes(FRAME - 50)
    assert playout.bytes_padded == FRAME - 50
    assert playout.bytes_sent == 4 * FRAME
    assert playout.next_wakeup(T0 + 0.060) is None


def test_a_partial_frame_completed_in_time_is_not_padded() -> None:
    playout = Playout(FMT, lead_ms=100)
    audio = _audio(FRAME * 4)
    playout.enqueue(audio[: FRAME + 10], T0)
    assert len(playout.poll(T0)[0]) == 1
    playout.enqueue(audio[FRAME + 10 :], T0 + 0.015)
    run = drive(playout, T0 + 0.015, T0 + 1)
    assert run.data == audio[FRAME:]
    assert playout.bytes_padded == 0


def test_odd_sized_pieces_make_exact_frames_and_pad_only_the_end() -> None:
    playout = Playout(FMT, lead_ms=100)
    audio = _audio(FRAME * 20 + 77)
    for offset in range(0, len(audio), 7):
        playout.enqueue(audio[offset : offset + 7], T0 + offset * 1e-7)
    run = drive(playout, T0 + 0.001, T0 + 5)
    assert all(len(f) == FRAME for f in run.frames)
    assert run.data == audio + bytes(FRAME - 77)
    assert playout.bytes_padded == FRAME - 77


def test_audio_arriving_before_the_stream_runs_dry_continues_the_schedule() -> None:
    playout = Playout(FMT, lead_ms=100)
    playout.enqueue(_audio(FRAME * 5), T0)
    assert len(playout.poll(T0)[0]) == 5  # plays until T0 + 100 ms
    playout.enqueue(_audio(FRAME * 5), T0 + 0.050)
    assert len(playout.poll(T0 + 0.050)[0]) == 2  # frames 5 and 6: sent audio ends at T0 + 140 ms
    assert playout.underruns == 0


def test_idle_then_a_new_utterance_re_anchors_without_an_underrun() -> None:
    playout = Playout(FMT, lead_ms=100)
    playout.enqueue(_audio(FRAME * 5), T0)
    drive(playout, T0, T0 + 1)
    later = T0 + 3.0
    playout.enqueue(_audio(FRAME * 10), later)
    run = drive(playout, later, later + 1)
    assert [t for t, _ in run.sends[:5]] == [later] * 5
    assert run.sends[5][0] == pytest.approx(later + 0.020)
    assert playout.underruns == 0


def test_audio_soon_after_the_stream_ran_dry_is_an_underrun_and_re_anchors() -> None:
    playout = Playout(FMT, lead_ms=100)
    playout.enqueue(_audio(FRAME * 5), T0)
    drive(playout, T0, T0 + 1)  # everything sent at T0, played by T0 + 100 ms
    late = T0 + 0.150
    playout.enqueue(_audio(FRAME * 10), late)
    assert playout.underruns == 1
    assert len(playout.poll(late)[0]) == 5  # a fresh run: the lead is refilled at once
    assert playout.next_wakeup(late) == pytest.approx(late + 0.020)


def test_a_held_partial_frame_overtaken_by_the_clock_counts_as_an_underrun() -> None:
    playout = Playout(FMT, lead_ms=100)
    audio = _audio(FRAME * 3)
    playout.enqueue(audio[: FRAME + 100], T0)
    assert len(playout.poll(T0)[0]) == 1
    # The loop never polled at the partial's play time (T0 + 20 ms); the rest arrives afterwards.
    playout.enqueue(audio[FRAME + 100 :], T0 + 0.030)
    assert playout.underruns == 1
    frames, _ = playout.poll(T0 + 0.030)
    assert b"".join(frames) == audio[FRAME:]
    assert playout.bytes_padded == 0


def test_marks_fire_when_played_not_when_sent() -> None:
    playout = Playout(FMT, lead_ms=100)
    playout.enqueue(_audio(FRAME * 10), T0)
    playout.add_mark("first", T0)
    playout.enqueue(_audio(FRAME * 10), T0)
    playout.add_mark("second", T0)
    run = drive(playout, T0, T0 + 5)
    assert [(m.name, m.position_ms) for _, m in run.marks] == [("first", 200), ("second", 400)]
    assert [t for t, _ in run.marks] == pytest.approx([T0 + 0.200, T0 + 0.400])
    # "first" was fully sent at T0 + 0.1 but had not been played yet.
    assert run.sends[9][0] == pytest.approx(T0 + 0.100)
    assert playout.pending_marks == 0


def test_a_mark_is_not_reported_early() -> None:
    playout = Playout(FMT, lead_ms=100)
    playout.enqueue(_audio(FRAME * 5), T0)
    playout.add_mark("end", T0)
    frames, marks = playout.poll(T0)
    assert (len(frames), marks) == (5, [])  # all sent, none played yet
    assert playout.poll(T0 + 0.099)[1] == []
    assert playout.next_wakeup(T0 + 0.099) == pytest.approx(T0 + 0.100)
    assert playout.poll(T0 + 0.100)[1] == [MarkReached("end", 100)]


def test_a_mark_with_nothing_queued_fires_on_the_next_poll() -> None:
    playout = Playout(FMT)
    playout.add_mark("nothing", T0)
    assert playout.next_wakeup(T0) is not None
    assert playout.poll(T0) == ([], [MarkReached("nothing", 0)])
    assert playout.next_wakeup(T0) is None


def test_a_mark_after_everything_played_fires_at_once_with_the_played_position() -> None:
    playout = Playout(FMT)
    playout.enqueue(_audio(FRAME * 7), T0)
    drive(playout, T0, T0 + 1)
    playout.add_mark("done", T0 + 2)
    assert playout.poll(T0 + 2) == ([], [MarkReached("done", 140)])


def test_a_mark_while_sent_audio_still_plays_waits_for_it() -> None:
    playout = Playout(FMT, lead_ms=100)
    playout.enqueue(_audio(FRAME * 5), T0)
    playout.poll(T0)  # all sent; playing until T0 + 100 ms
    playout.add_mark("tail", T0 + 0.010)
    assert playout.poll(T0 + 0.010)[1] == []
    assert playout.next_wakeup(T0 + 0.010) == pytest.approx(T0 + 0.100)
    assert playout.poll(T0 + 0.100)[1] == [MarkReached("tail", 100)]


def test_a_mark_after_a_padded_frame_counts_the_audio_only() -> None:
    playout = Playout(FMT)
    playout.enqueue(_audio(FRAME + 160), T0)  # 30 ms
    playout.add_mark("m", T0)
    run = drive(playout, T0, T0 + 1)
    ((fired_at, mark),) = run.marks
    assert mark.position_ms == 30
    assert fired_at == pytest.approx(T0 + 0.030)


def test_clear_drops_seconds_of_queued_audio_and_pending_marks() -> None:
    playout = Playout(FMT, lead_ms=100)
    audio = _audio(FMT.bytes_for_ms(5000))
    playout.enqueue(audio, T0)
    playout.add_mark("after-5s", T0)
    run = drive(playout, T0, T0 + 1.0)
    sent = playout.bytes_sent
    assert sent == len(run.data) == FMT.bytes_for_ms(1100)
    result = playout.clear(T0 + 1.0)
    assert result.bytes_dropped == len(audio) - sent
    assert result.marks_dropped == ("after-5s",)
    assert playout.queued_bytes == 0
    assert playout.poll(T0 + 1.0) == ([], [])
    assert playout.next_wakeup(T0 + 1.0) is None
    # The next audio starts a fresh run right away (no wait for the old schedule, no underrun).
    playout.enqueue(_audio(FRAME * 10), T0 + 1.01)
    assert len(playout.poll(T0 + 1.01)[0]) == 5
    assert playout.underruns == 0


def test_clear_also_drops_marks_whose_audio_was_sent_but_not_played() -> None:
    playout = Playout(FMT, lead_ms=100)
    playout.enqueue(_audio(FRAME * 2), T0)
    playout.add_mark("sent", T0)
    playout.poll(T0)
    assert playout.clear(T0 + 0.01).marks_dropped == ("sent",)
    assert playout.poll(T0 + 1)[1] == []


def test_the_bound_refuses_audio_without_queueing_any_of_it() -> None:
    playout = Playout(FMT, lead_ms=100, max_buffer_ms=1000)
    playout.enqueue(_audio(FMT.bytes_for_ms(800)), T0)
    with pytest.raises(PlayoutFull):
        playout.enqueue(_audio(FMT.bytes_for_ms(300)), T0)
    assert playout.queued_ms == pytest.approx(800.0)
    drive(playout, T0, T0 + 0.200)  # sent 300 ms, 500 ms left queued
    assert playout.enqueue(_audio(FMT.bytes_for_ms(300)), T0 + 0.2) == FMT.bytes_for_ms(300)
    with pytest.raises(PlayoutFull):
        playout.enqueue(_audio(FMT.bytes_for_ms(1001)), T0 + 0.2)


def test_other_rates_and_channels_use_their_own_frame_size() -> None:
    fmt = AudioFormat(16000, 2)
    playout = Playout(fmt, lead_ms=100)
    audio = _audio(fmt.bytes_for_ms(300) + 4)
    playout.enqueue(audio, T0)
    run = drive(playout, T0, T0 + 1)
    assert all(len(f) == 1280 for f in run.frames)
    assert len(run.frames) == 16
    assert run.data == audio + bytes(1280 - 4)
    assert [t for t, _ in run.sends[:6]] == [T0] * 5 + [pytest.approx(T0 + 0.020)]


def test_empty_audio_does_not_start_a_run() -> None:
    playout = Playout(FMT)
    assert playout.enqueue(b"", T0) == 0
    assert playout.next_wakeup(T0) is None


def test_a_long_stream_does_not_drift() -> None:
    playout = Playout(FMT, lead_ms=100)
    playout.enqueue(_audio(FMT.bytes_for_ms(60_000)), T0)
    run = drive(playout, T0, T0 + 100)
    assert len(run.frames) == 3000
    assert run.sends[-1][0] == pytest.approx(T0 + 60.0 - 0.1, abs=1e-6)


def test_lead_must_cover_a_frame() -> None:
    with pytest.raises(ValueError):
        Playout(FMT, lead_ms=10)


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.floats(min_value=0.0, max_value=0.2),  # time advance
            st.integers(min_value=0, max_value=2000),  # bytes to enqueue (0 = just poll)
        ),
        min_size=1,
        max_size=40,
    ),
    lead_ms=st.sampled_from([20, 60, 100, 250]),
)
def test_random_arrivals_and_wakeups_keep_the_invariants(
    steps: list[tuple[float, int]], lead_ms: int
) -> None:
    playout = Playout(FMT, lead_ms=lead_ms)
    audio = _audio(sum(size for _, size in steps))
    now, offset, run = T0, 0, Run()
    for advance, size in steps:
        now += advance
        if size:
            playout.enqueue(audio[offset : offset + size], now)
            offset += size
        frames, _ = playout.poll(now)
        run.sends += [(now, f) for f in frames]
        assert playout.lead_ms <= lead_ms + 1e-3  # never more than the lead ahead of real time
    drive(playout, now, now + 1000, run)
    assert all(len(f) == FRAME for f in run.frames)
    assert run.data.replace(b"\x00", b"") == audio  # audio intact and in order, only zeros added
    assert playout.bytes_sent == len(audio) + playout.bytes_padded
    assert playout.queued_bytes == 0


def test_batched_pacing_halves_wakeups_and_never_exceeds_the_lead() -> None:
    fmt = AudioFormat(8000)
    playout = Playout(fmt, lead_ms=100, batch_frames=2)
    audio = bytes(range(256)) * (fmt.bytes_for_ms(2000) // 256)
    playout.enqueue(audio, 0.0)
    now, wakeups, sent, leads = 0.0, 0, [], []
    def ahead_ms() -> float:  # sent audio minus what the voice has played (it plays from t=0)
        return len(sent) * fmt.frame_ms - now * 1000

    while (wake := playout.next_wakeup(now)) is not None:
        now = max(now, wake)
        steady = 0.2 < now < 1.8  # after the initial lead fill, before the queue runs dry
        if steady:
            leads.append(ahead_ms())  # the low point: just before this wake-up's frames go
        frames, _ = playout.poll(now)
        wakeups += 1
        sent.extend(frames)
        if steady:
            leads.append(ahead_ms())  # the high point
    assert b"".join(sent)[: len(audio)] == audio and all(len(f) == fmt.bytes_per_frame for f in sent)
    assert wakeups <= 100 // 2 + 5  # ~ one wake-up per two frames, not one per frame
    assert max(leads) <= 100 + 1e-6 and min(leads) >= 60 - 1e-6  # lead - batch frames .. lead


def test_batching_is_bounded_by_the_lead() -> None:
    with pytest.raises(ValueError, match="batch_frames"):
        Playout(AudioFormat(8000), lead_ms=40, batch_frames=3)
