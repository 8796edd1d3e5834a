"""Caller audio onto the bus with a bounded backlog: drops are counted and reported as one gap per run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgpack

from bridge.audio.format import AudioFormat
from bridge.broker.names import Topology
from bridge.broker.publisher import Outgoing
from bridge.broker.uplink import AudioUplink, Gap
from bridge.telemetry import Telemetry

FMT = AudioFormat.from_codec("L16", 8000, 16, 1)
CHUNK = FMT.bytes_for_ms(100)


@dataclass
class FakePublisher:
    sent: list[Outgoing] = field(default_factory=list)

    def submit(self, item: Outgoing) -> None:
        self.sent.append(item)


@dataclass
class FakeBroker:
    """The three things the uplink asks of the broker client: where to publish, and is it there."""

    up: bool = True
    blocked: bool = False
    audio: FakePublisher = field(default_factory=FakePublisher)
    topology: Topology = field(default_factory=lambda: Topology("t"))

    def ready(self) -> bool:
        return self.up


def uplink(broker: FakeBroker, backlog_ms: int = 200, mirror: bool = False) -> tuple[AudioUplink, list[Any]]:
    gaps: list[dict[str, Any]] = []
    link = AudioUplink(
        broker,  # type: ignore[arg-type]
        Telemetry(),
        FMT,
        key="k",
        session_id="s",
        codec={"id": "L16/8000/1"},
        headers={"session_id": "s"},
        chunk_ms=100,
        backlog_ms=backlog_ms,
        mirror_out=mirror,
        report_gap=gaps.append,
    )
    return link, gaps


def confirm(item: Outgoing) -> None:
    assert item.on_sent is not None
    item.on_sent(0.001)


def test_chunks_are_published_in_order_with_sample_clock_timestamps() -> None:
    broker = FakeBroker()
    link, gaps = uplink(broker, backlog_ms=10_000)
    link.caller_audio(b"\1" * (CHUNK * 2 + 10))
    bodies = [msgpack.unpackb(o.body) for o in broker.audio.sent]
    assert [(b["seq"], b["ts"], len(b["audio"])) for b in bodies] == [(0, 0, CHUNK), (1, 100, CHUNK)]
    assert {o.routing_key for o in broker.audio.sent} == {"k.in"} and gaps == []


def test_a_full_backlog_drops_and_reports_one_gap_when_audio_flows_again() -> None:
    broker = FakeBroker()
    link, gaps = uplink(broker, backlog_ms=200)  # two chunks unconfirmed at most
    link.caller_audio(b"\0" * (CHUNK * 5))  # chunks 0-1 held, 2-4 dropped
    assert len(broker.audio.sent) == 2 and gaps == []
    for item in broker.audio.sent:
        confirm(item)
    link.caller_audio(b"\0" * CHUNK)  # chunk 5 fits again: the gap is reported before it
    assert gaps == [
        {
            "direction": "in",
            "reason": "buffer_overflow",
            "dropped_chunks": 3,
            "dropped_bytes": 3 * CHUNK,
            "dropped_ms": 300,
            "first_seq": 2,
            "last_seq": 4,
        }
    ]
    assert link.dropped_in_chunks == 3 and link.dropped_in_bytes == 3 * CHUNK
    assert msgpack.unpackb(broker.audio.sent[-1].body)["seq"] == 5


def test_the_gap_reason_is_fixed_when_it_begins_and_flush_reports_an_open_gap() -> None:
    broker = FakeBroker(up=False)
    link, gaps = uplink(broker, backlog_ms=100)
    link.caller_audio(b"\0" * (CHUNK * 3))  # chunk 0 held, 1-2 dropped while the broker is away
    broker.up = True  # back before the report: the reason stays what it was
    link.caller_audio(b"\0" * 50)  # partial: stays in the chunker
    link.flush()  # the partial last chunk is over the backlog too; then the open gap is reported
    assert [(g["reason"], g["first_seq"], g["last_seq"]) for g in gaps] == [("broker_unavailable", 1, 3)]


def test_mirror_out_is_published_only_when_enabled() -> None:
    broker = FakeBroker()
    off, _ = uplink(broker, backlog_ms=10_000)
    off.played_audio(b"\0" * CHUNK)
    assert broker.audio.sent == []
    on, _ = uplink(broker, backlog_ms=10_000, mirror=True)
    on.played_audio(b"\0" * CHUNK)
    assert [o.routing_key for o in broker.audio.sent] == ["k.out"]


def test_gap_event_data_counts_milliseconds_from_bytes() -> None:
    gap = Gap("buffer_overflow", first_seq=7, last_seq=7)
    gap.add(7, 800)
    gap.add(8, 800)
    data = gap.event_data("out", FMT)
    assert data["dropped_ms"] == 100 and data["last_seq"] == 8 and data["direction"] == "out"
