"""rtvbp_consumer's Call merging a replay with live messages, without I/O: live messages past a hole are
held back while the replay fills it, overlap is dropped by seq, and a failed replay leaves a gap."""

from __future__ import annotations

from typing import cast

from rtvbp_consumer import AudioGap, Call, Dtmf, Event
from rtvbp_consumer.commands import Commands
from rtvbp_consumer.events import parse_event

CHUNK = 1600  # 100 ms of L16/8000/1
STARTED = {"audio_codec": {"name": "L16", "sample_rate": 8000, "channels": 1}, "audio": {"chunk_ms": 100}}


def chunk(seq: int) -> tuple[int, int, bytes]:
    return seq, seq * 100, bytes([seq]) * CHUNK


def dtmf(seq: int, digit: str) -> Event:
    return parse_event({"type": "dtmf", "seq": seq, "ts": 1000 + seq, "data": {"digit": digit}})


def late_call(replays: list[Call]) -> Call:
    # Commands are never sent here: the call only reads.
    return Call(STARTED, "s", "k", cast(Commands, None), 1.0, lambda _: None, on_late=replays.append)


def drain(call: Call) -> tuple[list[bytes], list[Event]]:
    audio, events = [], []
    while not call._audio.empty():
        if (a := call._audio.get_nowait()) is not None:
            audio.append(a)
    while not call._events.empty():
        if (e := call._events.get_nowait()) is not None:
            events.append(e)
    return audio, events


async def test_a_chunk_past_the_next_seq_asks_for_a_replay_and_waits_for_it() -> None:
    replays: list[Call] = []
    call = late_call(replays)
    call.feed_chunk(*chunk(3))  # the first chunk we see live: 0..2 went by before we followed
    call.feed_event(dtmf(2, "5"))
    assert replays == [call] and call.replaying and not call.replay_done.is_set()
    assert drain(call) == ([], [])  # held, not delivered out of order
    for seq in range(3):
        call.replayed_chunk(*chunk(seq))
    call.replayed_event(dtmf(1, "4"))
    assert call.replay_done.is_set()  # the replay met the first held chunk
    call.feed_chunk(*chunk(4))  # live, before the consumer has switched back: still held, in order
    call.end_replay()
    call.feed_chunk(*chunk(3))  # a late copy of an overlapping chunk
    audio, events = drain(call)
    assert audio == [chunk(n)[2] for n in range(5)]
    assert [e.digit for e in events if isinstance(e, Dtmf)] == ["4", "5"]
    assert not [e for e in events if isinstance(e, AudioGap)] and call.stream.duplicates == 1
    assert replays == [call]  # one replay


async def test_a_replay_that_fails_leaves_the_hole_reported_as_a_gap() -> None:
    replays: list[Call] = []
    call = late_call(replays)
    call.feed_chunk(*chunk(2))
    call.end_replay()  # (the consumer does this when the stream could not be read)
    audio, events = drain(call)
    assert audio == [chunk(2)[2]]
    gaps = [e for e in events if isinstance(e, AudioGap)]
    assert [(g.first_seq, g.last_seq, g.dropped_bytes) for g in gaps] == [(0, 1, 2 * CHUNK)]


async def test_without_a_replay_stream_a_hole_is_a_gap_at_once() -> None:
    call = Call(STARTED, "s", "k", cast(Commands, None), 1.0, lambda _: None)
    call.feed_chunk(*chunk(1))
    audio, events = drain(call)
    assert not call.replaying and audio == [chunk(1)[2]]
    assert [type(e) for e in events] == [AudioGap]
