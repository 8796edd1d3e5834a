"""rtvbp_consumer's per-call stream without I/O: duplicates dropped, gaps sized, the end of audio known."""

from __future__ import annotations

import pytest
from rtvbp_consumer.events import AudioGap, Codec, SessionEnded, parse_event
from rtvbp_consumer.stream import CallStream

CHUNK = 1600  # 100 ms of L16/8000/1


def stream() -> CallStream:
    return CallStream(Codec("L16", 8000))


def ended(bytes_in: int) -> SessionEnded:
    event = parse_event(
        {
            "type": "session.ended",
            "seq": 9,
            "ts": 0,
            "data": {"reason": "hangup", "counters": {"bytes_in": bytes_in}},
        }
    )
    assert isinstance(event, SessionEnded)
    return event


def test_in_order_chunks_are_delivered_and_repeats_dropped() -> None:
    s = stream()
    assert s.accept_chunk(0, 0, b"a" * CHUNK) == (True, None)
    assert s.accept_chunk(1, 100, b"b" * CHUNK) == (True, None)
    assert s.accept_chunk(0, 0, b"a" * CHUNK) == (False, None)  # republished after a broker blip
    assert s.accept_chunk(1, 100, b"b" * CHUNK) == (False, None)
    assert (s.duplicates, s.received_bytes) == (2, 2 * CHUNK)


def test_a_seq_jump_is_a_gap_sized_from_the_stream_position() -> None:
    s = stream()
    s.accept_chunk(0, 0, b"a" * CHUNK)
    deliver, gap = s.accept_chunk(4, 400, b"e" * CHUNK)
    assert deliver and gap is not None
    assert (gap.first_seq, gap.last_seq, gap.dropped_chunks) == (1, 3, 3)
    assert (gap.dropped_bytes, gap.dropped_ms, gap.detected_by) == (3 * CHUNK, 300, "consumer")
    assert s.missing_bytes == 3 * CHUNK


def test_a_range_the_bridge_reported_is_counted_but_not_reported_twice() -> None:
    s = stream()
    bridge_gap = parse_event(
        {
            "type": "audio.gap",
            "seq": 3,
            "ts": 0,
            "data": {
                "direction": "in",
                "reason": "buffer_overflow",
                "dropped_chunks": 2,
                "dropped_bytes": 2 * CHUNK,
                "dropped_ms": 200,
                "first_seq": 1,
                "last_seq": 2,
            },
        }
    )
    assert isinstance(bridge_gap, AudioGap)
    s.note_bridge_gap(bridge_gap)
    s.accept_chunk(0, 0, b"a" * CHUNK)
    assert s.accept_chunk(3, 300, b"d" * CHUNK) == (True, None)
    assert s.missing_bytes == 2 * CHUNK


def test_audio_is_complete_when_the_stream_reaches_bytes_in_and_a_lost_tail_becomes_a_gap() -> None:
    s = stream()
    s.accept_chunk(0, 0, b"a" * CHUNK)
    assert not s.audio_complete  # not ended yet
    s.ended = ended(2 * CHUNK + 320)
    assert not s.audio_complete  # session.ended overtook the last chunks
    s.accept_chunk(1, 100, b"b" * CHUNK)
    assert s.tail_gap() is not None and s.audio_complete and s.missing_bytes == 320
    done = stream()
    done.accept_chunk(0, 0, b"a" * 320)
    done.ended = ended(320)
    assert done.audio_complete and done.tail_gap() is None


def test_events_are_deduplicated_and_missing_ones_reported() -> None:
    s = stream()
    assert s.accept_event(1) == (True, None)
    assert s.accept_event(1) == (False, None)
    deliver, gap = s.accept_event(4)
    assert deliver and gap is not None and (gap.first_seq, gap.last_seq) == (2, 3)


@pytest.mark.parametrize(
    "body",
    [
        {"type": "dtmf", "seq": 1},
        {"type": "dtmf", "seq": "x", "data": {"digit": "1"}},
        {"seq": 1},
        {"type": "x", "seq": 1, "data": [1]},
    ],
)
def test_malformed_events_raise_for_the_consumer_to_skip(body: dict[str, object]) -> None:
    with pytest.raises((KeyError, TypeError, ValueError)):
        parse_event(body)


def test_a_session_ended_without_seq_or_counters_from_another_replica_ends_the_audio_at_once() -> None:
    event = parse_event(
        {"type": "session.ended", "ts": 0, "data": {"reason": "bridge_lost", "instance": "b-2"}}
    )
    assert isinstance(event, SessionEnded) and (event.seq, event.reason, event.counters) == (
        -1,
        "bridge_lost",
        {},
    )
    s = stream()
    s.accept_chunk(0, 0, b"a" * CHUNK)
    s.ended = event
    assert s.audio_complete and s.tail_gap() is None
