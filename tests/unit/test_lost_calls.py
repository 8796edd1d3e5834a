"""The lost-call tracker (sans-I/O): which calls a lost replica left behind, and when it counts as lost."""

from __future__ import annotations

import pytest

from bridge.broker.lost_calls import BadRecord, LedgerRecord, LostCallTracker

ME, OTHER, THIRD = "rtvbp.replica.me", "rtvbp.replica.other", "rtvbp.replica.third"


def started(presence: str, key: str) -> LedgerRecord:
    return LedgerRecord("started", presence, key, f"id of {key}", f"instance of {presence}")


def ended(presence: str, key: str) -> LedgerRecord:
    return LedgerRecord("ended", presence, key)


def test_a_replica_away_for_the_grace_loses_exactly_its_open_calls() -> None:
    tracker: LostCallTracker[str] = LostCallTracker(ME, lost_after_s=2.0)
    assert tracker.record(started(OTHER, "a"), "tag-a") == []
    assert tracker.record(started(OTHER, "b"), "tag-b") == []
    assert tracker.record(started(THIRD, "c"), "tag-c") == []
    assert tracker.record(ended(OTHER, "b"), "tag-b-end") == ["tag-b", "tag-b-end"]  # settled together
    assert sorted(tracker.to_check()) == [OTHER, THIRD]
    assert tracker.observe(OTHER, False, now=10.0) == []  # first miss starts the grace
    assert tracker.observe(OTHER, False, now=11.9) == []
    (lost,) = tracker.observe(OTHER, False, now=12.0)
    assert (lost.session_id, lost.key, lost.instance, lost.tag) == (
        "id of a",
        "a",
        f"instance of {OTHER}",
        "tag-a",
    )
    assert tracker.to_check() == [THIRD]  # reported once: the replica is forgotten
    assert tracker.observe(OTHER, False, now=20.0) == []


def test_a_replica_that_comes_back_within_the_grace_is_not_lost() -> None:
    tracker: LostCallTracker[str] = LostCallTracker(ME, lost_after_s=2.0)
    tracker.record(started(OTHER, "a"), "tag-a")
    assert tracker.observe(OTHER, False, now=0.0) == []
    assert tracker.observe(OTHER, True, now=1.5) == []  # a broker blip: it reconnected
    assert tracker.observe(OTHER, False, now=3.0) == []  # a new absence starts a new grace
    assert tracker.observe(OTHER, False, now=4.9) == []
    assert len(tracker.observe(OTHER, False, now=5.0)) == 1


def test_own_calls_are_never_checked_and_a_replica_with_no_calls_left_is_forgotten() -> None:
    tracker: LostCallTracker[str] = LostCallTracker(ME)
    tracker.record(started(ME, "mine"), "t1")
    tracker.record(started(OTHER, "x"), "t2")
    tracker.record(ended(OTHER, "x"), "t3")
    assert tracker.to_check() == []
    assert tracker.observe(ME, False, now=100.0) == []
    assert tracker.live_calls() == 1


def test_a_redelivered_record_replaces_itself_and_an_unknown_end_is_just_settled() -> None:
    tracker: LostCallTracker[str] = LostCallTracker(ME)
    assert tracker.record(started(OTHER, "a"), "first") == []
    assert tracker.record(started(OTHER, "a"), "again") == ["first"]
    assert tracker.record(ended(THIRD, "zzz"), "stray") == ["stray"]
    tracker.reset()
    assert tracker.live_calls() == 0 and tracker.to_check() == []


@pytest.mark.parametrize("record", [started(OTHER, "k"), ended(OTHER, "k")])
def test_records_round_trip(record: LedgerRecord) -> None:
    assert LedgerRecord.from_wire(record.to_wire()) == record


@pytest.mark.parametrize(
    "wire",
    [
        [],
        {"op": "paused", "presence": OTHER, "key": "k"},
        {"op": "ended", "presence": "", "key": "k"},
        {"op": "ended", "presence": OTHER, "key": 7},
        {"op": "started", "presence": OTHER, "key": "k", "instance": "i"},
    ],
)
def test_bad_records_are_refused_with_a_reason(wire: object) -> None:
    with pytest.raises(BadRecord):
        LedgerRecord.from_wire(wire)
