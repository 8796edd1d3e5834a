"""Ownership lock, broker unavailable, broker restart mid-call, many calls at once."""

from __future__ import annotations

import asyncio
import subprocess
import time

import pytest

from bridge.audio.signal import tone
from bridge.tools.voicepeer import RemoteError, VoicePeer
from tests.conftest import BridgeFactory, ws_url
from tests.support.amqp import Agent


async def test_duplicate_session_is_refused_on_the_same_and_another_replica(
    bridge_factory: BridgeFactory, agent: Agent
) -> None:
    one = await bridge_factory(instance_id="replica-a")
    two = await bridge_factory(instance_id="replica-b")
    first = VoicePeer(ws_url(one), session_id="dup")
    await first.connect()
    await first.initialize()
    for service in (one, two):
        again = VoicePeer(ws_url(service), session_id="dup")
        await again.connect()
        with pytest.raises(RemoteError) as refused:
            await again.initialize()
        assert refused.value.code == 409
        await again.wait_closed()
    # the first call is untouched and still owns its commands
    reply = await agent.command("dup", {"type": "request", "method": "session.get", "params": {"keys": []}})
    assert reply is not None and reply["ok"]
    started = [e for e in agent.events if e.body["type"] == "session.started"]
    assert len(started) == 1 and started[0].body["data"]["instance"] == "replica-a"
    await first.hangup()
    await first.close()
    # once it ended, the id is free again
    later = VoicePeer(ws_url(two), session_id="dup")
    await later.connect()
    await later.initialize()
    await later.hangup()
    await later.close()


async def test_broker_unavailable_at_initialize_refuses_the_call(bridge_factory: BridgeFactory) -> None:
    service = await bridge_factory(amqp_url="amqp://guest:guest@127.0.0.1:1/", publish_timeout_s=1.5)
    assert not service.server.ready()
    voice = VoicePeer(ws_url(service), session_id="nobroker")
    await voice.connect()
    asked = time.monotonic()
    with pytest.raises(RemoteError) as refused:
        await voice.initialize()
    assert time.monotonic() - asked < 2.0  # voices give up on initialize after about 2 s
    assert refused.value.code == 503 and "broker" in refused.value.message
    assert await voice.wait_closed() == 1011


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.mark.slow
async def test_broker_restart_mid_call_keeps_the_call_and_loses_nothing(
    bridge_factory: BridgeFactory, amqp_url: str, prefix: str
) -> None:
    service = await bridge_factory(audio_backlog_ms=30_000)
    agent = Agent(amqp_url, prefix, durable_queues=True)  # durable: the consumer's queue survives the restart
    await agent.start()
    try:
        voice = VoicePeer(ws_url(service), session_id="restart")
        await voice.connect()
        await voice.initialize()
        pcm = tone(440, 1000, 8000)
        await voice.stream_audio(pcm[:8000])
        await asyncio.to_thread(rabbitmqctl, "stop_app")
        try:
            await voice.stream_audio(pcm[8000:])  # caller keeps talking while the broker is down
            await voice.dtmf("7")
        finally:
            await asyncio.to_thread(rabbitmqctl, "start_app")
        deadline = time.monotonic() + 30
        while not service.broker.ready() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert service.broker.ready()
        await agent.wait_event("dtmf", "restart", timeout=20)
        # the call survived: commands work again (ownership re-taken on the restored connection)
        reply = await agent.command(
            "restart", {"type": "request", "method": "ping", "params": {"t0": 1}}, timeout=20
        )
        assert reply is not None and reply["ok"]
        await voice.hangup()
        ended = await agent.wait_event("session.ended", "restart", timeout=20)
        counters = ended.body["data"]["counters"]
        assert counters["dropped_in_bytes"] == 0
        chunks = {r.body["seq"]: r.body["audio"] for r in agent.audio if r.body["session_id"] == "restart"}
        assert b"".join(chunks[s] for s in sorted(chunks)) == pcm  # duplicates allowed, loss not
        assert "audio.gap" not in agent.event_types("restart")
        await voice.close()
    finally:
        await agent.stop()


@pytest.mark.slow
async def test_fifty_concurrent_calls_at_real_time_without_loss_or_cross_talk(bridge, agent: Agent) -> None:
    calls = 50
    seconds = 3

    async def one(index: int) -> bytes:
        # each caller speaks its own constant so any cross-talk is visible in the bytes
        pcm = bytes([index, 0]) * (8000 * seconds)
        voice = VoicePeer(ws_url(bridge), session_id=f"load-{index}")
        await voice.connect()
        await voice.initialize()
        await asyncio.sleep(index * 0.02 / calls * 50 % 0.02)
        await voice.stream_audio(pcm)
        await voice.hangup()
        await voice.close()
        return pcm

    sent = await asyncio.gather(*(one(i) for i in range(calls)))
    await agent.wait_for(
        lambda: sum(1 for e in agent.events if e.body["type"] == "session.ended") == calls, timeout=30
    )
    # Audio and events travel on different exchanges: session.ended may overtake the last chunks
    # (docs/consumers.md §4). Wait for the bytes session.ended promises; a loss still times out here.
    await agent.wait_for(
        lambda: sum(len(r.body["audio"]) for r in agent.audio) == len(b"".join(sent)), timeout=10
    )
    for index, pcm in enumerate(sent):
        chunks = [r for r in agent.audio if r.body["session_id"] == f"load-{index}"]
        assert [c.body["seq"] for c in chunks] == list(range(len(chunks)))
        assert b"".join(c.body["audio"] for c in chunks) == pcm
        assert all(c.routing_key == f"load-{index}.in" for c in chunks)
