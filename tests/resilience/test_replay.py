"""Replay (BRIDGE_REPLAY=true): late and restarted consumers read a call from its first chunk.

The consumers are examples/replay_call.py run as processes, the way a user would run their copy: one
attaches 2 s into a live call, one is SIGKILLed mid-call and restarted from its saved offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bridge.service import Service
from tests.conftest import BridgeFactory
from tests.resilience.conftest import FRAME, speech, started_call
from tests.resilience.rabbit import until
from tests.support.amqp import Agent

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "replay_call.py"


def reader(amqp_url: str, prefix: str, session: str, out: Path, *extra: str) -> subprocess.Popen[bytes]:
    args = ["--amqp-url", amqp_url, "--prefix", prefix, "--session", session, "--out", str(out), *extra]
    return subprocess.Popen(
        [sys.executable, str(EXAMPLE), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def saved(state: Path) -> dict[str, Any]:
    with contextlib.suppress(OSError, ValueError):
        return dict(json.loads(state.read_text()))
    return {}


async def finished(process: subprocess.Popen[bytes], timeout: float = 15) -> list[dict[str, Any]]:
    """Wait for a reader to exit on its own (at the call's end); its printed events."""
    await until(lambda: process.poll() is not None, timeout, "the replay reader to finish")
    out, err = process.communicate()
    assert process.returncode == 0, err.decode()
    return [json.loads(line) for line in out.decode().splitlines()]


async def test_late_and_restarted_consumers_read_every_chunk_from_seq_0(
    bridge_factory: BridgeFactory, agent: Agent, prefix: str, amqp_url: str, tmp_path: Path
) -> None:
    service: Service = await bridge_factory(replay=True)
    session = f"replay-{os.urandom(3).hex()}"
    voice = await started_call(service, agent, session)
    since_ms = (await agent.wait_event("session.started", session)).body["ts"]
    state, restarted_out, late_out = (
        tmp_path / "state.json",
        tmp_path / "restarted.raw",
        tmp_path / "late.raw",
    )
    first = reader(
        amqp_url, prefix, session, restarted_out, "--since-ms", str(since_ms), "--state", str(state)
    )
    late: subprocess.Popen[bytes] | None = None
    resumed_after = -1
    sent = bytearray()
    start = time.monotonic()
    try:
        for n in range(200):  # 4 s of caller audio in real time, every frame different
            await asyncio.sleep(max(0.0, start + n * 0.02 - time.monotonic()))
            frame = speech(n, 1)
            await voice.send_audio(frame)
            sent += frame
            if n == 50 and first.poll() is None:  # 1 s in: the first reader dies mid-call, state on disk
                await until(lambda: saved(state).get("audio_seq", -1) >= 3, 5, "the reader to save progress")
                first.send_signal(signal.SIGKILL)
                first.wait(5)
            if n == 75:  # 1.5 s in: it comes back from its last offset
                resumed_after = saved(state)["offset"]
                first = reader(amqp_url, prefix, session, restarted_out, "--state", str(state))
            if n == 100:  # 2 s in: a consumer that only learns of the call now
                late = reader(amqp_url, prefix, session, late_out, "--since-ms", str(since_ms))
        await voice.hangup()
        await voice.close()
        assert late is not None
        late_events, restarted_events = await finished(late), await finished(first)
    finally:
        for process in (first, late):
            if process is not None and process.poll() is None:
                process.kill()
    assert len(sent) == 200 * FRAME
    # Bytes equal to what the caller sent: every chunk from seq 0, in order, none twice.
    assert late_out.read_bytes() == bytes(sent)
    assert restarted_out.read_bytes() == bytes(sent)
    assert [e["seq"] for e in late_events] == list(range(len(late_events)))
    assert late_events[0]["type"] == "session.started" and late_events[-1]["type"] == "session.ended"
    # The restarted reader went on after its last handled offset: nothing seen twice, nothing skipped.
    offsets = [e["offset"] for e in restarted_events]
    assert resumed_after >= 0 and offsets == sorted(set(offsets)) and offsets[0] > resumed_after
    assert restarted_events[-1]["type"] == "session.ended"
