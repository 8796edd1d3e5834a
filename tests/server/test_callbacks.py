"""The per-frame paths that run as loop callbacks: caller audio taken from the socket parser, the pacer.

The server runs in-process with a recording `CallApp` (the plug point the broker link implements), over
real WebSocket connections, so what the callbacks do is observed exactly: order, counts and failures.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from bridge.audio.playout import MarkReached
from bridge.auth import Principal
from bridge.compat import websockets as compat_websockets
from bridge.compat.websockets import HandoffConnection
from bridge.config import load_settings
from bridge.port import CallSummary
from bridge.protocol.session import InitializeRequested, VoiceEvent
from bridge.server.app import BridgeServer
from bridge.server.call import Call
from bridge.service import build_authenticator
from bridge.tools.voicepeer import VoicePeer
from tests.support.polling import until

FRAME = 320  # 20 ms of L16/8000


@dataclass
class RecordingApp:
    fail_in: str | None = None  # "audio_in", "audio_out" or "mark_reached": raise there
    seen: list[tuple[str, object]] = field(default_factory=list)
    played: list[bytes] = field(default_factory=list)
    call: Call | None = None
    summary: CallSummary | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self, call: Call, init: InitializeRequested) -> None:
        self.call = call

    def voice_event(self, event: VoiceEvent) -> None:
        self.seen.append(("event", event.name))

    def audio_in(self, data: bytes) -> None:
        if self.fail_in == "audio_in":
            raise RuntimeError("boom")
        self.seen.append(("audio", data))

    def mark_reached(self, mark: MarkReached) -> None:
        if self.fail_in == "mark_reached":
            raise RuntimeError("boom")
        self.seen.append(("mark", mark.name))

    def audio_out(self, frame: bytes) -> None:
        if self.fail_in == "audio_out":
            raise RuntimeError("boom")
        self.played.append(frame)

    async def end(self, summary: CallSummary) -> None:
        self.summary = summary
        self.ended.set()


@dataclass
class Harness:
    server: BridgeServer
    apps: list[RecordingApp]
    next_failure: list[str | None]

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.port}/"


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    settings = load_settings(host="127.0.0.1", port=0, playout_lead_ms=100)
    apps: list[RecordingApp] = []
    failures: list[str | None] = []

    def factory(_: Principal) -> RecordingApp:
        app = RecordingApp(fail_in=failures.pop(0) if failures else None)
        apps.append(app)
        return app

    server = BridgeServer(settings, build_authenticator(settings), factory)
    await server.start()
    yield Harness(server, apps, failures)
    await server.close()


def caller_items(app: RecordingApp) -> list[tuple[str, object]]:
    """What the voice sent, as the app saw it (without the session's own events)."""
    return [
        item
        for item in app.seen
        if item[0] in ("audio", "event") and item[1] not in ("session.updated", "call.hangup")
    ]


def connection_of(harness: Harness, app: RecordingApp) -> HandoffConnection:
    assert app.call is not None and isinstance(app.call.ws, HandoffConnection)
    return app.call.ws


async def test_caller_audio_keeps_its_order_with_control_messages_on_both_paths(harness: Harness) -> None:
    async with VoicePeer(harness.url, session_id="order") as voice:
        await voice.initialize()
        app = harness.apps[0]
        assert voice.ws is not None
        sent: list[tuple[str, object]] = []
        # Bursts: frames arriving together find the reader busy with a text message and go through the
        # queue; frames arriving alone are taken from the parser. Both must keep the order on the wire.
        for burst in range(20):
            for i in range(5):
                frame = bytes([burst, i]) * (FRAME // 2)
                await voice.ws.send(frame)
                sent.append(("audio", frame))
            await voice.dtmf(str(burst % 10))
            sent.append(("event", "dtmf"))
            if burst % 4 == 0:  # the reader took all and goes idle: the next frames take the fast path
                await until(lambda: len(caller_items(app)) == len(sent), 5, "the reader to catch up", 0.005)
        await voice.hangup()
        await asyncio.wait_for(app.ended.wait(), 5)
    assert caller_items(app) == sent
    connection = connection_of(harness, app)
    assert 0 < connection.binary_taken <= 100
    assert app.summary is not None and app.summary.stats.frames_in == 100
    assert app.summary.stats.bytes_in == 100 * FRAME


async def test_without_the_parser_hooks_caller_audio_keeps_its_order_through_the_reader(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A websockets without the Assembler hooks the hand-off reads: every message takes the reader path."""
    monkeypatch.setattr(compat_websockets, "handoff_supported", lambda connection: False)
    async with VoicePeer(harness.url, session_id="no-hooks") as voice:
        await voice.initialize()
        app = harness.apps[0]
        sent: list[tuple[str, object]] = []
        for n in range(30):
            frame = n.to_bytes(2, "little") * (FRAME // 2)
            await voice.send_audio(frame)
            sent.append(("audio", frame))
            if n % 5 == 4:
                await voice.dtmf(str(n % 10))
                sent.append(("event", "dtmf"))
                await asyncio.sleep(0.01)  # an idle reader: the hand-off would take the next frame
        await voice.hangup()
        await asyncio.wait_for(app.ended.wait(), 5)
    received = [item for item in app.seen if item[0] in ("audio", "event") and item[1] not in NOT_SENT]
    assert received == sent
    connection = connection_of(harness, app)
    assert connection.binary_sink is None and connection.binary_taken == 0
    assert app.summary is not None and app.summary.stats.frames_in == 30


async def test_audio_before_the_session_is_open_is_left_to_the_reader(harness: Harness) -> None:
    async with VoicePeer(harness.url, session_id="early") as voice:
        assert voice.ws is not None
        await voice.ws.send(b"\x00" * FRAME)  # before session.initialize: dropped and counted
        await voice.initialize()
        await voice.send_audio(b"\x01" * FRAME)
        await voice.hangup()
        app = harness.apps[0]
        await asyncio.wait_for(app.ended.wait(), 5)
    assert app.seen.count(("audio", b"\x01" * FRAME)) == 1
    assert app.summary is not None and app.summary.protocol.early_binary_frames == 1
    assert app.summary.stats.frames_in == 1


async def test_the_pacer_plays_exact_frames_at_real_time_with_marks_in_place(harness: Harness) -> None:
    async with VoicePeer(harness.url, session_id="pace") as voice:
        await voice.initialize()
        app = harness.apps[0]
        call = app.call
        assert call is not None
        audio = bytes(range(256)) * 25  # 6400 bytes = 400 ms = 20 frames
        started = time.monotonic()
        call.enqueue_audio(audio)
        assert call.stats.frames_out == 5  # the 100 ms lead went out at once, before enqueue returned
        call.add_mark("end-of-prompt")
        await until(lambda: ("mark", "end-of-prompt") in app.seen, 5, "the mark", interval=0.01)
        marked = time.monotonic() - started
        await until(lambda: len(voice.played.frames) == 20, 5, "every frame", interval=0.01)
        await voice.hangup()
    assert voice.played.audio == audio
    assert all(len(frame) == FRAME for frame in voice.played.frames)
    assert app.played == voice.played.frames  # the .out mirror saw exactly what the voice got
    # 100 ms of lead: 400 ms of audio is all sent after ~300 ms; the mark fires when it has played.
    span = voice.played.times[-1] - voice.played.times[0]
    assert 0.22 <= span <= 0.45, span
    assert 0.36 <= marked <= 0.6, marked


async def test_the_pacer_holds_audio_while_the_voice_does_not_read(harness: Harness) -> None:
    async with VoicePeer(harness.url, session_id="stuck") as voice:
        await voice.initialize()
        app = harness.apps[0]
        call = app.call
        assert call is not None and voice.ws is not None
        voice.ws.transport.pause_reading()  # the voice stops reading; TCP buffers fill, then ours
        unsent = call.ws.transport.get_write_buffer_size
        while unsent() <= 64 * 1024:  # fill the kernel's buffers, then ours beyond the hold point
            call.send_event("input.transcript", {"delta": "x" * 32_000})
            await asyncio.sleep(0)
        held, held_at = unsent(), call.stats.frames_out
        call.enqueue_audio(b"\x02" * (8000 * 2 * 40))  # 40 s of audio, played at 100 ms lead
        # The clock: a healthy call on the same loop plays one second and its mark fires.
        async with VoicePeer(harness.url, session_id="clock") as clock:
            await clock.initialize()
            clock_app = harness.apps[1]
            assert clock_app.call is not None
            clock_app.call.enqueue_audio(b"\x01" * 16000)
            clock_app.call.add_mark("one-second")
            await until(lambda: ("mark", "one-second") in clock_app.seen, 5, "a second of playout")
            await clock.hangup()
        # Meanwhile pacing alone would have sent 50 frames: none went into the full socket buffer, the
        # audio waits in the playout buffer.
        assert call.stats.frames_out == held_at, (held_at, call.stats.frames_out)
        assert unsent() == held, (held, unsent())
        playout = call.playout
        assert playout is not None and playout.queued_ms > 30_000
        voice.ws.transport.resume_reading()
        await voice.hangup()


@pytest.mark.parametrize("where", ["audio_in", "audio_out", "mark_reached"])
async def test_a_failing_callback_ends_only_its_own_call(harness: Harness, where: str) -> None:
    harness.next_failure.append(where)
    async with (
        VoicePeer(harness.url, session_id="failing") as failing,
        VoicePeer(harness.url, session_id="bystander") as bystander,
    ):
        await failing.initialize()
        await bystander.initialize()
        bad, good = harness.apps
        assert bad.call is not None and good.call is not None
        if where == "audio_in":
            await failing.send_audio(b"\x00" * FRAME)
        else:
            bad.call.enqueue_audio(b"\x00" * FRAME * 2)  # audio_out fails right here, at the first frame
            if where == "mark_reached":
                bad.call.add_mark("m")
        assert await failing.wait_closed() == 1011
        await asyncio.wait_for(bad.ended.wait(), 5)
        assert bad.summary is not None and bad.summary.reason == "error"
        # The other call is untouched: audio both ways and requests still work.
        await bystander.send_audio(b"\x03" * FRAME)
        good.call.enqueue_audio(b"\x04" * FRAME)
        assert (await bystander.request("ping", {"t0": 1700000000000})).ok
        await until(
            lambda: ("audio", b"\x03" * FRAME) in good.seen and len(bystander.played.frames) == 1,
            5,
            "the bystander's audio both ways",
            interval=0.01,
        )
        await bystander.hangup()


async def test_fragmented_audio_goes_through_the_reader_whole_and_in_order(harness: Harness) -> None:
    async with VoicePeer(harness.url, session_id="fragments") as voice:
        await voice.initialize()
        app = harness.apps[0]
        assert voice.ws is not None
        first, second, third = b"\x01" * FRAME, b"\x02" * FRAME, b"\x03" * FRAME
        await voice.send_audio(first)
        await voice.ws.send([second[:100], second[100:]])  # one message in two frames
        await voice.send_audio(third)
        await voice.hangup()
        await asyncio.wait_for(app.ended.wait(), 5)
    assert [data for kind, data in app.seen if kind == "audio"] == [first, second, third]
    assert app.summary is not None and app.summary.stats.frames_in == 3


@pytest.mark.parametrize("seed", range(8))
async def test_random_interleavings_of_audio_and_control_keep_the_wire_order(
    harness: Harness, seed: int
) -> None:
    """Bursts, pauses, fragmented audio and pings at random: whichever path each message takes (parser or
    reader), the app sees exactly the order of the wire."""
    rng = random.Random(seed)
    async with VoicePeer(harness.url, session_id=f"mix-{seed}") as voice:
        await voice.initialize()
        app = harness.apps[0]
        assert voice.ws is not None
        sent: list[tuple[str, object]] = []
        for n in range(120):
            roll = rng.random()
            if roll < 0.6:
                frame = n.to_bytes(2, "little") * (rng.choice([1, 80, 160, 400]))
                if rng.random() < 0.15:
                    cut = rng.randrange(1, len(frame))
                    await voice.ws.send([frame[:cut], frame[cut:]])  # fragmented
                else:
                    await voice.ws.send(frame)
                sent.append(("audio", frame))
            elif roll < 0.85:
                await voice.dtmf(str(n % 10))
                sent.append(("event", "dtmf"))
            else:
                await voice.request("ping", {"t0": 1700000000000})  # waits for the reader's answer
            if rng.random() < 0.1:
                await asyncio.sleep(rng.choice([0, 0.005, 0.02]))
        await voice.hangup()
        await asyncio.wait_for(app.ended.wait(), 5)
    received = [item for item in app.seen if item[0] in ("audio", "event") and item[1] not in NOT_SENT]
    assert received == sent
    assert app.summary is not None
    assert app.summary.stats.bytes_in == sum(len(data) for kind, data in sent if kind == "audio")  # type: ignore[arg-type]


NOT_SENT = ("session.updated", "call.hangup")  # events the peer sends itself around the test's own


@dataclass
class AudioDuringStartApp(RecordingApp):
    """A consumer that answers session.started with audio before the bridge has accepted the call."""

    queued: list[object] = field(default_factory=list)

    async def start(self, call: Call, init: InitializeRequested) -> None:
        await super().start(call, init)
        self.queued.append(call.enqueue_audio(b"\x01\x02" * (FRAME * 5 // 2)))  # 100 ms
        call.add_mark("during-start")
        await asyncio.sleep(0.05)  # the rest of the bus side's set-up (the broker's confirm)


async def test_audio_sent_during_set_up_is_queued_and_played_after_the_initialize_answer() -> None:
    settings = load_settings(host="127.0.0.1", port=0, playout_lead_ms=100)
    apps: list[AudioDuringStartApp] = []

    def factory(_: Principal) -> AudioDuringStartApp:
        apps.append(AudioDuringStartApp())
        return apps[-1]

    server = BridgeServer(settings, build_authenticator(settings), factory)
    await server.start()
    try:
        async with VoicePeer(f"ws://127.0.0.1:{server.port}/", session_id="early-audio") as voice:
            texts_at_first_frame: list[int] = []
            buffer = voice._buffer

            def first_frame(size: int) -> None:
                if not texts_at_first_frame:
                    texts_at_first_frame.append(len(voice.texts))
                buffer(size)

            voice._buffer = first_frame  # type: ignore[method-assign]
            await voice.initialize()
            await until(lambda: len(voice.played.frames) == 5, 5, "the early audio to be played")
            app = apps[0]
            await until(lambda: ("mark", "during-start") in app.seen, 5, "the mark")
            assert [getattr(q, "queued_bytes", None) for q in app.queued] == [FRAME * 5]
            assert texts_at_first_frame == [1]  # the initialize answer came first, then the audio
            assert voice.played.audio == b"\x01\x02" * (FRAME * 5 // 2)
            await voice.hangup()
    finally:
        await server.close()
