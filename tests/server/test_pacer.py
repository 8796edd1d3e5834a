"""The pacer over a real socket: what it sends when, what it mirrors, when it holds and when it stops."""

from __future__ import annotations

import asyncio
import contextvars
import time
from dataclasses import dataclass, field

from bridge.audio.format import AudioFormat
from bridge.audio.playout import MarkReached, Playout
from bridge.compat.websockets import FrameWriter
from bridge.port import CallStats
from bridge.server.pacer import PACER_HOLD_BYTES, Pacer, unsent_bytes
from bridge.telemetry import Telemetry
from tests.server.pair import socket_pair
from tests.support.polling import until

L16_8K = AudioFormat.from_codec("L16", 8000, 16, 1)
FRAME = L16_8K.bytes_per_frame  # 320 bytes = 20 ms
LEAD_FRAMES = 5  # the 100 ms lead


@dataclass
class Mirror:
    """The app side of the pacer: the `.out` mirror, the marks, and a failure to inject."""

    fail: bool = False
    played: list[bytes] = field(default_factory=list)
    marks: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def audio_out(self, frame: bytes) -> None:
        if self.fail:
            raise RuntimeError("boom")
        self.played.append(frame)

    def mark_reached(self, mark: MarkReached) -> None:
        self.marks.append(mark.name)


def started_pacer(ws: object, app: Mirror, stats: CallStats) -> tuple[Pacer, Playout]:
    pacer = Pacer(ws, stats, app, Telemetry(), app.failures.append)  # type: ignore[arg-type]
    playout = Playout(L16_8K, lead_ms=100)
    pacer.start(playout, contextvars.copy_context())
    return pacer, playout


async def test_the_lead_goes_out_at_once_then_frames_follow_in_real_time() -> None:
    async with socket_pair() as (server, client):
        app, stats = Mirror(), CallStats()
        pacer, playout = started_pacer(server, app, stats)
        audio = bytes(range(256)) * 10  # 2560 bytes: 8 frames = 160 ms
        started = time.monotonic()
        playout.enqueue(audio, started)
        playout.add_mark("end", started)
        pacer.reschedule()
        assert stats.frames_out == LEAD_FRAMES  # written before reschedule returned
        received = [await asyncio.wait_for(client.recv(), 2) for _ in range(8)]
        elapsed = time.monotonic() - started
        assert b"".join(received) == audio and all(len(frame) == FRAME for frame in received)
        assert app.played == received
        assert 0.04 <= elapsed <= 0.25, elapsed  # 3 frames after the lead: ~60 ms, not at once
        await until(lambda: app.marks == ["end"], 2, "the mark once its audio has played", interval=0.005)
        assert time.monotonic() - started >= 0.15
        assert stats.frames_out == 8 and stats.bytes_out == len(audio) and app.failures == []


async def test_nothing_is_paced_before_start_or_after_stop() -> None:
    async with socket_pair() as (server, client):
        app, stats = Mirror(), CallStats()
        idle = Pacer(server, stats, app, Telemetry(), app.failures.append)  # type: ignore[arg-type]
        idle.reschedule()  # no playout yet: nothing to do, nothing fails
        pacer, playout = started_pacer(server, app, stats)
        playout.enqueue(b"\x01" * FRAME * 10, time.monotonic())
        pacer.reschedule()
        assert stats.frames_out == LEAD_FRAMES
        due = playout.next_wakeup(time.monotonic())
        assert due is not None
        pacer.stop()
        await asyncio.sleep(max(0.0, due - time.monotonic()) + 0.03)  # past the wake-up stop cancelled
        pacer.reschedule()  # new audio after the end changes nothing
        assert stats.frames_out == LEAD_FRAMES and playout.queued_bytes == FRAME * 5
        await server.send("after")  # the next message the voice gets is this, no late frame before it
        assert [await client.recv() for _ in range(LEAD_FRAMES + 1)][-1] == "after"


async def test_a_closing_socket_gets_no_frames() -> None:
    async with socket_pair() as (server, _client):
        app, stats = Mirror(), CallStats()
        pacer, playout = started_pacer(server, app, stats)
        await server.close()
        playout.enqueue(b"\x01" * FRAME * 3, time.monotonic())
        pacer.reschedule()
        assert stats.frames_out == 0 and app.played == [] and app.failures == []
        assert playout.queued_bytes == FRAME * 3  # left for the call's end to count as dropped


async def test_a_failing_callback_is_reported_once_as_playout() -> None:
    async with socket_pair() as (server, _client):
        app, stats = Mirror(fail=True), CallStats()
        pacer, playout = started_pacer(server, app, stats)
        playout.enqueue(b"\x01" * FRAME * 10, time.monotonic())
        pacer.reschedule()
        assert app.failures == ["playout"]
        due = playout.next_wakeup(time.monotonic())
        assert due is not None
        await asyncio.sleep(max(0.0, due - time.monotonic()) + 0.03)
        assert app.failures == ["playout"]  # no wake-up was scheduled after the failure


async def test_audio_waits_in_the_playout_while_the_voice_does_not_read_then_flows_again() -> None:
    async with socket_pair() as (server, client):
        app, stats = Mirror(), CallStats()
        pacer, playout = started_pacer(server, app, stats)
        client.transport.pause_reading()  # the voice stops reading
        filler = [b"\x00" * 4096] * 2048  # 8 MiB: more than the kernel buffers on loopback take
        assert FrameWriter(server).write(filler)
        assert unsent_bytes(server) > PACER_HOLD_BYTES  # precondition: websockets holds unsent data
        playout.enqueue(b"\x05" * FRAME * 6, time.monotonic())
        pacer.reschedule()
        assert stats.frames_out == 0 and playout.queued_bytes == FRAME * 6  # held, not buffered
        received: list[bytes] = []

        async def drain() -> None:
            async for message in client:
                if message != filler[0]:
                    received.append(message)  # type: ignore[arg-type]

        reader = asyncio.create_task(drain())
        client.transport.resume_reading()
        await until(lambda: len(received) == 6, 10, "the held frames once the voice reads", interval=0.01)
        assert received == [b"\x05" * FRAME] * 6 and stats.frames_out == 6
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
