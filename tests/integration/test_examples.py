"""The example agents, driven by the simulator through the real bridge and broker, watched by the tap."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from bridge.audio.signal import dominant_frequency, goertzel_power
from bridge.tools.simulate import CallResult, Script, Target, run_call
from bridge.tools.tap import Tap
from bridge.tools.tap_report import SessionTrace
from bridge.tools.voicepeer import codec
from tests.conftest import BridgeFactory, ws_url
from tests.support.polling import until

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@asynccontextmanager
async def running(name: str, amqp_url: str, prefix: str, **kwargs: Any) -> AsyncIterator[None]:
    """Run an example agent in this event loop until the block ends; fail if it dies or never gets ready."""
    ready = asyncio.Event()
    task = asyncio.create_task(load_example(name).run(amqp_url, prefix, ready=ready, **kwargs))
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait({task, waiter}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    assert ready.is_set(), task.exception() if task.done() else "agent not ready in 10 s"
    try:
        yield
    finally:
        assert not task.done(), f"the agent stopped: {task.exception()!r}"
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def wav_bytes(path: Path) -> tuple[bytes, int]:
    with wave.open(str(path), "rb") as wav:
        return wav.readframes(wav.getnframes()), wav.getframerate()


def at_ms(result: CallResult, prefix: str) -> float:
    """When the simulator's timeline first recorded something starting with `prefix`."""
    return next(t for t, what in result.timeline if what.startswith(prefix))


def timeline(trace: SessionTrace) -> list[tuple[str, str | None]]:
    """(event type, its digit / mark name / end reason) for each event of a session."""
    pairs = [(e["type"], e["data"] or {}) for e in trace.events]
    return [(kind, d.get("digit") or d.get("name") or d.get("reason")) for kind, d in pairs]


async def test_echo_agent_plays_the_caller_back_and_hangs_up_on_hash(
    bridge_factory: BridgeFactory, amqp_url: str, prefix: str, tmp_path: Path
) -> None:
    service = await bridge_factory(mirror_out=True)
    tap = await Tap(amqp_url, prefix, wav_dir=tmp_path).start()
    script = Script(tone_hz=440, duration_s=2.0, dtmf=(("1", 0.4), ("#", 1.6)))
    async with running("echo_agent", amqp_url, prefix, delay_s=0.5):
        result = await run_call(Target(ws_url(service)), script, "echo-1", keep_audio=True)
        trace = (await tap.wait_sessions(1, timeout=5))[0]
    await tap.stop()

    assert result.ok, result.error
    assert result.ended_by == "application" and result.close_code == 1000
    assert dict(result.requests_answered) == {"call.hangup": 1}
    assert trace.event_types() == ["session.started", "session.updated", "dtmf", "dtmf", "session.ended"]
    assert [e["data"]["digit"] for e in trace.events if e["type"] == "dtmf"] == ["1", "#"]
    assert trace.ended is not None and trace.ended["data"]["reason"] == "hangup"
    # The caller hears its own tone, delayed by the agent (0.5 s) plus the bridge's 100 ms chunks.
    echo_delay = at_ms(result, "first played frame") - at_ms(result, "caller audio starts")
    assert 500 <= echo_delay <= 1000, echo_delay
    played = result.played_audio
    assert 0.7 * 16000 <= len(played) <= 1.3 * 16000, len(played)
    assert dominant_frequency(played, 8000, [220, 440, 660, 880, 1000]) == 440
    # The tap's WAVs hold what went over the socket in each direction.
    # When the application hangs up, the last few frames in flight never reach the bus.
    tapped_in, rate = wav_bytes(trace.wav["in"])
    assert rate == 8000 and result.sent_audio.startswith(tapped_in)
    assert len(result.sent_audio) - len(tapped_in) <= 5 * 320
    assert wav_bytes(trace.wav["out"]) == (played, 8000)


async def test_menu_agent_marks_barge_in_choices_move_and_hangup_for_concurrent_calls(
    bridge, amqp_url: str, prefix: str, tmp_path: Path
) -> None:
    tap = await Tap(amqp_url, prefix, wav_dir=tmp_path).start()
    target = Target(ws_url(bridge))
    # The prompt lasts 1.4 s: "barge" presses 1 in the middle of it, "wait" lets it finish.
    barge = Script(duration_s=3.0, dtmf=(("1", 0.5), ("#", 2.5)), ping_interval_s=0)
    wait = Script(duration_s=3.0, dtmf=(("2", 2.0), ("0", 3.6)), ping_interval_s=0)
    async with running("menu_agent", amqp_url, prefix):
        cut, heard = await asyncio.gather(
            run_call(target, barge, "menu-barge", keep_audio=True),
            run_call(target, wait, "menu-wait", keep_audio=True),
        )
        traces = {t.session_id: t for t in await tap.wait_sessions(2, timeout=5)}
    await tap.stop()
    assert cut.ok and heard.ok, (cut.error, heard.error)

    # Barge-in: the digit during the prompt cleared it (no "prompt" mark), then choice 1 played in full.
    barged = traces["menu-barge"]
    assert timeline(barged) == [
        ("session.started", None),
        ("session.updated", None),
        ("dtmf", "1"),
        ("playout.mark", "choice-1"),
        ("dtmf", "#"),
        ("session.ended", "hangup"),
    ]
    assert dict(cut.requests_answered) == {"audio.buffer.clear": 1, "call.hangup": 1}
    assert at_ms(cut, "caller pressed 1") < at_ms(cut, "application request audio.buffer.clear")
    assert at_ms(cut, "application request audio.buffer.clear") - at_ms(cut, "caller pressed 1") < 300
    played = cut.played_audio
    assert 1.2 * 16000 <= len(played) <= 1.9 * 16000, len(played)
    assert dominant_frequency(played[:2400], 8000, [400, 600, 1000, 1500]) == 400  # the prompt's start
    assert dominant_frequency(played[-16000:], 8000, [400, 600, 1000, 1500]) == 1000  # choice 1
    assert goertzel_power(played, 8000, 600) < 0.01 * goertzel_power(played, 8000, 1000)  # item 2 never heard

    # No barge-in: the prompt finished (its mark), choice 2 played, then 0 moved the call back to the IVR.
    waited = traces["menu-wait"]
    assert timeline(waited) == [
        ("session.started", None),
        ("session.updated", None),
        ("playout.mark", "prompt"),
        ("dtmf", "2"),
        ("playout.mark", "choice-2"),
        ("dtmf", "0"),
        ("session.ended", "move"),
    ]
    assert dict(heard.requests_answered) == {"application.move": 1}
    assert heard.ended_by == "application" and "application.move" in heard.ended
    full = heard.played_audio
    assert 2.3 * 16000 <= len(full) <= 2.6 * 16000, len(full)
    first, second = full[: 8000 * 2 * 4 // 10], full[8000 * 2 * 7 // 10 : 8000 * 2 * 11 // 10]
    assert dominant_frequency(first, 8000, [400, 600, 1000, 1500]) == 400
    assert dominant_frequency(second, 8000, [400, 600, 1000, 1500]) == 600
    assert dominant_frequency(full[-16000:], 8000, [400, 600, 1000, 1500]) == 1500
    assert wav_bytes(waited.wav["in"]) == (heard.sent_audio, 8000)


async def test_pipecat_agent_answers_digits_with_tones_barges_in_and_hangs_up(
    bridge, amqp_url: str, prefix: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tap = await Tap(amqp_url, prefix, wav_dir=tmp_path).start()
    # Tones last 1 s: 2 arrives while 1's tone plays (barge-in), # after 2's tone has finished.
    script = Script(duration_s=3.0, dtmf=(("1", 0.3), ("2", 0.8), ("#", 2.3)), ping_interval_s=0)
    # Beside it, a 16 kHz caller who presses 3 and hangs up during its tone: that pipeline is cancelled.
    leaver = Script(offers=(codec(16000),), duration_s=1.0, dtmf=(("3", 0.2),), hangup_after_s=0.9,
                    ping_interval_s=0)
    with caplog.at_level(logging.INFO, logger="rtvbp_consumer.pipecat"):
        async with running("pipecat_agent", amqp_url, prefix):
            result, left = await asyncio.gather(
                run_call(Target(ws_url(bridge)), script, "pipecat-1", keep_audio=True),
                run_call(Target(ws_url(bridge)), leaver, "pipecat-leaver", keep_audio=True),
            )
            traces = {t.session_id: t for t in await tap.wait_sessions(2, timeout=5)}
            trace = traces["pipecat-1"]
            await until(lambda: "pipecat-leaver ended (hangup): cancelling" in caplog.text, 5, "the cancel")
    await tap.stop()

    assert left.ok and left.ended_by == "caller", left.error
    assert "call.hangup" not in dict(left.requests_answered)
    assert 0.3 * 32000 <= len(left.played_audio) <= 0.8 * 32000  # 800 Hz at the call's 16 kHz, cut short
    assert dominant_frequency(left.played_audio, 16000, [600, 700, 800, 1000]) == 800

    assert result.ok, result.error
    assert result.ended_by == "application" and result.close_code == 1000, result.timeline
    answered = dict(result.requests_answered)
    assert answered.get("call.hangup") == 1 and answered.get("audio.buffer.clear", 0) >= 1, answered
    assert at_ms(result, "caller pressed 2") < at_ms(result, "application request audio.buffer.clear")
    assert trace.ended is not None and trace.ended["data"]["reason"] == "hangup"
    assert [e["data"]["digit"] for e in trace.events if e["type"] == "dtmf"] == ["1", "2", "#"]
    # The caller heard part of 1's tone (600 Hz), cut by the barge-in, then all of 2's (700 Hz).
    played = result.played_audio
    candidates = [600, 700, 800, 1000]
    assert dominant_frequency(played[:1600], 8000, candidates) == 600
    assert dominant_frequency(played[-16000:], 8000, candidates) == 700
    first_tone = len(played) - 16000
    assert 0.2 * 16000 <= first_tone <= 0.8 * 16000, first_tone  # cut well before its 1 s
