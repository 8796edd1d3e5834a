"""Graceful drain of the real process on SIGTERM."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from bridge.tools.voicepeer import VoicePeer
from tests.support.amqp import Agent
from tests.support.process import bridge_process


async def test_sigterm_drains_live_calls_then_moves_the_rest(
    agent: Agent, prefix: str, tmp_path: Path
) -> None:
    env = {"BRIDGE_EXCHANGE_PREFIX": prefix, "BRIDGE_DRAIN_TIMEOUT_S": "2", "BRIDGE_DRAIN_ACTION": "move"}
    with bridge_process(env, tmp_path) as bridge:
        finishing = VoicePeer(bridge.ws_url, session_id="drain-a")
        lingering = VoicePeer(bridge.ws_url, session_id="drain-b")
        for voice in (finishing, lingering):
            await voice.connect()
            await voice.initialize()
        await agent.wait_event("session.started", "drain-b")
        bridge.terminate()
        await bridge.until_draining(timeout=2)  # readiness flips at once
        with pytest.raises(InvalidStatus) as refused:
            async with connect(bridge.ws_url):
                pass
        assert refused.value.response.status_code == 503
        # live calls go on during the drain: audio still flows, one call ends by itself
        await lingering.send_audio(b"\x00\x01" * 160)
        await finishing.hangup()
        assert await finishing.wait_closed() == 1000
        # the other is still up at the drain timeout: the bridge sends the caller back to the IVR
        move = await lingering.wait_request("application.move", timeout=5)
        assert move.params == {"reason": "shutdown"}
        assert await lingering.wait_closed() == 1000
        exit_code = await asyncio.to_thread(bridge.process.wait, 15)
        assert exit_code == 0, bridge.log()
    ended_a = await agent.wait_event("session.ended", "drain-a")
    ended_b = await agent.wait_event("session.ended", "drain-b")
    assert ended_a.body["data"]["reason"] == "hangup"
    assert ended_b.body["data"]["reason"] == "shutdown"
    assert ended_b.body["data"]["counters"]["bytes_in"] == 320  # nothing lost on the way out
    await asyncio.sleep(0)


async def test_second_sigterm_ends_calls_without_waiting(prefix: str, tmp_path: Path) -> None:
    env = {"BRIDGE_EXCHANGE_PREFIX": prefix, "BRIDGE_DRAIN_TIMEOUT_S": "60", "BRIDGE_DRAIN_ACTION": "hangup"}
    with bridge_process(env, tmp_path) as bridge:
        voice = VoicePeer(bridge.ws_url, session_id="drain-fast")
        await voice.connect()
        await voice.initialize()
        started = time.monotonic()
        bridge.terminate()
        await bridge.until_draining()  # the first signal is taken: the second one skips the wait
        bridge.terminate()
        hangup = await voice.wait_request("call.hangup", timeout=5)
        assert hangup.params == {"reason": "shutdown"}
        assert await asyncio.to_thread(bridge.process.wait, 15) == 0
        assert time.monotonic() - started < 10  # not the 60 s drain


async def test_workers_share_the_port_and_drain_together(agent: Agent, prefix: str, tmp_path: Path) -> None:
    env = {
        "BRIDGE_EXCHANGE_PREFIX": prefix,
        "BRIDGE_WORKERS": "2",
        "BRIDGE_DRAIN_TIMEOUT_S": "1",
        "BRIDGE_INSTANCE_ID": "multi",
    }
    with bridge_process(env, tmp_path) as bridge:
        voices = [VoicePeer(bridge.ws_url, session_id=f"worker-{i}") for i in range(12)]
        for voice in voices:
            await voice.connect()
            await voice.initialize()
        for i in range(12):
            await agent.wait_event("session.started", f"worker-{i}")
        instances = {e.body["data"]["instance"] for e in agent.events if e.body["type"] == "session.started"}
        assert instances == {"multi-w0", "multi-w1"}  # the kernel spread the calls over both workers
        bridge.terminate()
        for voice in voices:
            assert await voice.wait_closed(10) == 1000  # moved back to the IVR at the end of the drain
        assert await asyncio.to_thread(bridge.process.wait, 20) == 0
    for i in range(12):
        ended = await agent.wait_event("session.ended", f"worker-{i}")
        assert ended.body["data"]["reason"] == "shutdown"
