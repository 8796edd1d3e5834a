"""One call end to end through the real bridge and the real broker."""

from __future__ import annotations

import asyncio

from bridge.audio.signal import tone
from bridge.tools.voicepeer import VoicePeer
from tests.conftest import ws_url
from tests.support.amqp import Agent


async def test_call_events_and_audio_reach_the_bus_in_order(bridge, agent: Agent) -> None:
    pcm = tone(440, 2000, 8000)
    async with VoicePeer(ws_url(bridge), session_id="flow-1") as voice:
        chosen = await voice.initialize()
        assert chosen["id"] == "L16/8000/1"
        started = await agent.wait_event("session.started", "flow-1")
        assert started.body["seq"] == 0
        assert started.routing_key == "flow-1.session.started"
        # variable-size frames, like a legacy voice: the bridge re-chunks a byte stream
        sizes = [320, 100, 220, 320, 7, 313, 320]
        offset = 0
        index = 0
        while offset < len(pcm):
            size = sizes[index % len(sizes)]
            await voice.send_audio(pcm[offset : offset + size])
            offset += size
            index += 1
        for digit in "12#":
            await voice.dtmf(digit)
        response = await voice.hangup()
        assert response.ok
        assert await voice.wait_closed() == 1000
    ended = await agent.wait_event("session.ended", "flow-1")
    assert ended.body["data"]["reason"] == "hangup"
    await agent.wait_for(lambda: sum(len(r.body["audio"]) for r in agent.audio) == len(pcm))
    types = agent.event_types("flow-1")
    assert types == [
        "session.started",
        "session.updated",
        "dtmf",
        "dtmf",
        "dtmf",
        "call.hangup",
        "session.ended",
    ]
    assert [r.body["seq"] for r in agent.events] == list(range(len(types)))
    chunks = [r for r in agent.audio if r.body["session_id"] == "flow-1"]
    assert [c.body["seq"] for c in chunks] == list(range(len(chunks)))
    assert b"".join(c.body["audio"] for c in chunks) == pcm
    assert [c.body["ts"] for c in chunks] == [i * 100 for i in range(len(chunks))]
    assert [e.body["data"]["digit"] for e in agent.events if e.body["type"] == "dtmf"] == ["1", "2", "#"]
    counters = ended.body["data"]["counters"]
    assert counters["bytes_in"] == len(pcm)
    # caller chunks published on `.in`: `chunks_in`; `chunks_out` is its v1 alias, kept until v2
    assert counters["chunks_in"] == counters["chunks_out"] == len(chunks) == 20
    assert counters["frames_out"] == counters["bytes_out"] == 0  # "out" is only audio played to the caller
    await asyncio.sleep(0)


async def test_events_the_voice_sends_during_set_up_follow_session_started(bridge, agent: Agent) -> None:
    """A voice may send events before it has our initialize answer (a caller pressing keys at once)."""
    async with VoicePeer(ws_url(bridge), session_id="eager") as voice:
        initializing = asyncio.create_task(voice.initialize())
        while not voice._pending:  # the initialize request is registered, then written in the same step
            await asyncio.sleep(0)
        await asyncio.sleep(0)
        await voice.dtmf("1")
        await voice.dtmf("2")
        await initializing
        await voice.hangup()
    await agent.wait_event("session.ended", "eager")
    assert agent.event_types("eager") == [
        "session.started",
        "dtmf",
        "dtmf",
        "session.updated",
        "call.hangup",
        "session.ended",
    ]
    events = [r for r in agent.events if r.body["session_id"] == "eager"]
    assert [r.body["seq"] for r in events] == list(range(len(events)))
    assert [e.body["data"]["digit"] for e in events if e.body["type"] == "dtmf"] == ["1", "2"]


async def test_every_message_carries_a_traceparent_even_without_a_tracing_sdk(bridge, agent: Agent) -> None:
    caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    calls = {"tp-own": None, "tp-caller": {"traceparent": f"00-{caller_trace}-00f067aa0ba902b7-01"}}
    for session, headers in calls.items():
        async with VoicePeer(ws_url(bridge), session_id=session, headers=headers) as voice:
            await voice.initialize()
            await voice.send_audio(b"\x00" * 1600)  # one 100 ms chunk
            await voice.dtmf("1")
            await voice.hangup()
        await agent.wait_event("session.ended", session)
    trace_of: dict[str, set[str]] = {}
    for received in agent.events + agent.audio:
        version, trace_id, span_id, _flags = received.message.headers["traceparent"].split("-")
        assert version == "00" and len(span_id) == 16 and int(trace_id, 16) and int(span_id, 16)
        trace_of.setdefault(received.body["session_id"], set()).add(trace_id)
    # one trace per call, on events and audio alike; a caller's trace is continued
    assert all(len(ids) == 1 for ids in trace_of.values())
    assert trace_of["tp-caller"] == {caller_trace}
    assert trace_of["tp-own"] != trace_of["tp-caller"]
    assert {"session.started", "dtmf", "session.ended"} <= set(agent.event_types("tp-own"))
    assert any(r.body["session_id"] == "tp-own" for r in agent.audio)
