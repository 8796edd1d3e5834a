"""Consumers talking back over AMQP: playout, marks, barge-in, requests, events, bad commands."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import aio_pika
import msgpack
import pytest

from bridge.audio.signal import dominant_frequency, tone
from bridge.schemas import validate_body
from bridge.tools.voicepeer import VoicePeer
from tests.conftest import BridgeFactory, ws_url
from tests.support.amqp import Agent
from tests.support.polling import until


async def started_call(bridge, agent: Agent, session: str, **kwargs: Any) -> VoicePeer:  # type: ignore[no-untyped-def]
    voice = VoicePeer(ws_url(bridge), session_id=session, **kwargs)
    await voice.connect()
    await voice.initialize()
    await agent.wait_event("session.started", session)
    return voice


async def test_played_audio_arrives_as_exact_frames_at_real_time_pace(bridge, agent: Agent) -> None:
    voice = await started_call(bridge, agent, "play")
    pcm = tone(1000, 1000, 8000) + b"\x01\x02" * 50  # 1 s + a partial frame
    reply = await agent.command("play", {"type": "audio", "audio": pcm})
    assert reply is not None and reply["ok"] and reply["result"]["queued_bytes"] == len(pcm)
    # the whole queue not yet sent to the voice (this 1 s minus the <= 100 ms lead sent at once):
    # `backlog_ms`; `queued_ms` is its v1 alias, kept until v2
    backlog_ms = reply["result"]["backlog_ms"]
    assert backlog_ms == reply["result"]["queued_ms"] and len(pcm) // 16 - 100 <= backlog_ms < len(pcm) // 16
    await agent.command("play", {"type": "mark", "name": "end-of-prompt"})
    mark = await agent.wait_event("playout.mark", "play", timeout=5)
    assert mark.body["data"]["name"] == "end-of-prompt"
    frames = voice.played.frames
    # the mark fires once its audio is out, not when it is queued: every frame is already at the voice
    assert len(frames) == 51
    assert mark.body["data"]["position_ms"] == len(pcm) // 16  # 16 bytes per ms at L16/8000
    assert all(len(f) == 320 for f in frames)
    played = voice.played.audio
    assert played[: len(pcm)] == pcm and played[len(pcm) :] == b"\x00" * (51 * 320 - len(pcm))
    times = voice.played.times
    # 5 frames of lead go at once, then one per 20 ms: the whole second takes ~0.9 s, not less
    span = times[-1] - times[0]
    assert 0.85 <= span <= 1.2, span
    # after the lead, one frame per 20 ms on average (the pacer may send two per wake-up: no per-gap bound)
    paced = (times[-1] - times[5]) / (len(times) - 6)
    assert 0.015 <= paced <= 0.025, paced
    assert dominant_frequency(played[:8000], 8000, [500, 1000, 2000]) == 1000
    await voice.hangup()
    await voice.close()


async def test_barge_in_cuts_five_seconds_of_queued_audio_within_a_frame(bridge, agent: Agent) -> None:
    frames_at_clear: list[int] = []

    def observe(kind: str, item: Any) -> None:
        if kind == "request" and item.method == "audio.buffer.clear":
            frames_at_clear.append(len(voice.played.frames))

    voice = await started_call(bridge, agent, "barge", observer=observe)
    await agent.command("barge", {"type": "audio", "audio": tone(500, 5000, 8000)})
    await agent.command("barge", {"type": "mark", "name": "never"})
    await until(lambda: len(voice.played.frames) >= 10, 5, "the prompt to be playing")
    reply = await agent.command("barge", {"type": "clear"})
    assert reply is not None and reply["ok"], reply
    result = reply["result"]
    # ~4.8 s of our queue dropped; the voice reports what it had buffered (<= the 100 ms lead + a frame)
    assert result["bridge_bytes"] >= 4 * 16000
    assert 0 <= result["voice_bytes"] <= 2400
    assert result["marks_dropped"] == ["never"]
    clear_request = await voice.wait_request("audio.buffer.clear")
    assert clear_request.params == {}
    # The bridge drops its queue before it asks the voice to: no prompt frame follows the request on the
    # socket. What follows is exactly the next audio, played at once (not after the dropped seconds).
    after = b"\x07\x00" * 800
    await agent.command("barge", {"type": "audio", "audio": after})
    await agent.command("barge", {"type": "mark", "name": "after"})
    await agent.wait_event("playout.mark", "barge", timeout=2)
    [cut] = frames_at_clear
    assert b"".join(voice.played.frames[cut:]) == after
    assert "never" not in [r.body["data"]["name"] for r in agent.events if r.body["type"] == "playout.mark"]
    await voice.hangup()
    await voice.close()


@pytest.mark.parametrize(
    ("method", "params", "expected"),
    [
        ("recording.start", {"tags": ["support"]}, {"id": "recording-1"}),
        ("recording.stop", {"id": "recording-1"}, {}),
        ("session.set", {"data": {"customer": "Ada", "attempt": 2}}, {}),
        ("session.get", {"keys": []}, {"attempt": 2, "customer": "Ada"}),
        ("audio.buffer.clear", {}, {"len": 0}),
        ("ping", {"t0": 1700000000000}, None),
    ],
)
async def test_requests_round_trip_with_a_reply(
    bridge, agent: Agent, method: str, params: dict[str, Any], expected: Any
) -> None:
    voice = await started_call(bridge, agent, "req")
    voice.variables.update({"customer": "Ada", "attempt": 2})
    reply = await agent.command("req", {"type": "request", "method": method, "params": params})
    assert reply is not None and reply["ok"], reply
    validate_body(reply, kind="reply")
    if expected is not None:
        assert reply["result"] == expected
    else:
        assert set(reply["result"]) >= {"t0", "t1", "t2", "owd"}
    request = await voice.wait_request(method)
    assert request.params == params
    await voice.hangup()
    await voice.close()


async def test_replies_carry_session_id_and_continue_the_commands_trace(bridge, agent: Agent) -> None:
    voice = await started_call(bridge, agent, "traced")
    started = await agent.wait_event("session.started", "traced")
    call_trace = started.message.headers["traceparent"].split("-")[1]
    consumer_trace, consumer_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    asked: dict[str, dict[str, Any]] = {
        "audio": {"type": "audio", "audio": b"\x00\x01" * 160},
        "ping": {"type": "request", "method": "ping", "params": {"t0": 1700000000000}},
        "bad": {"type": "audio", "audio": b"\x00"},
    }
    for name, body in asked.items():
        for headers, expected_trace in (
            (None, call_trace),  # no trace of its own: the reply stays on the call's trace
            ({"traceparent": f"00-{consumer_trace}-{consumer_span}-01"}, consumer_trace),
        ):
            cid = f"{name}-{expected_trace[:6]}"
            reply = await agent.command("traced", body, correlation_id=cid, headers=headers)
            assert reply is not None, name
            reply_headers = agent.reply_messages[cid].headers
            assert reply_headers["session_id"] == "traced", (name, reply_headers)
            version, trace_id, span_id, _ = str(reply_headers["traceparent"]).split("-")
            assert (version, trace_id) == ("00", expected_trace), (name, headers, reply_headers)
            assert len(span_id) == 16
    await voice.hangup()
    await voice.close()


async def test_terminal_requests_end_the_call(bridge, agent: Agent) -> None:
    voice = await started_call(bridge, agent, "move")
    reply = await agent.command(
        "move",
        {
            "type": "request",
            "method": "application.move",
            "params": {"reason": "handoff", "application_id": "app-2"},
        },
    )
    assert reply is not None and reply["result"] == {"next_application_id": "app-2"}
    assert await voice.wait_closed() == 1000
    ended = await agent.wait_event("session.ended", "move")
    assert ended.body["data"]["reason"] == "move"


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("application.move", {"reason": "handoff", "application_id": "app-2"}),
        ("call.hangup", {"reason": "done"}),
    ],
)
async def test_a_voice_that_closes_instead_of_answering_gets_no_success_reply(
    bridge, agent: Agent, method: str, params: dict[str, Any]
) -> None:
    # Real telephony: asked to move or hang up, the voice just closes the socket without an answer.
    voice = await started_call(bridge, agent, "closer", respond=False)
    asked = asyncio.create_task(
        agent.command("closer", {"type": "request", "method": method, "params": params})
    )
    await voice.wait_request(method)
    await voice.close()
    reply = await asked
    assert reply is not None and reply["ok"] is False, reply
    assert reply["error"] == {"code": 503, "message": "the call closed before the voice answered"}
    validate_body(reply, kind="reply")
    ended = await agent.wait_event("session.ended", "closer")
    assert ended.body["data"]["reason"] == "disconnect"
    assert f"before the voice answered {method}" in ended.body["data"]["detail"]


@pytest.mark.parametrize(
    ("method", "params", "wrong"),
    [
        ("recording.start", {}, {"id": 5}),  # the id must be a string
        ("ping", {"t0": 1700000000000}, {"t0": "soon"}),
        ("audio.buffer.clear", {}, {"len": True}),  # a bool is not a byte count
    ],
)
async def test_a_result_the_voice_gets_wrong_is_a_502_not_relayed(
    bridge, agent: Agent, method: str, params: dict[str, Any], wrong: dict[str, Any]
) -> None:
    voice = await started_call(bridge, agent, "wrong", respond=False)
    asked = asyncio.create_task(
        agent.command("wrong", {"type": "request", "method": method, "params": params})
    )
    request = await voice.wait_request(method)
    assert voice.ws is not None
    await voice.ws.send(json.dumps({"version": "1", "response": request.id, "result": wrong}))
    reply = await asked
    assert reply is not None and reply["ok"] is False, reply
    assert reply["error"]["code"] == 502 and method in reply["error"]["message"], reply
    validate_body(reply, kind="reply")
    voice.respond = True
    await voice.hangup()
    await voice.close()


async def test_voice_errors_and_timeouts_become_error_replies(
    bridge_factory: BridgeFactory, agent: Agent
) -> None:
    service = await bridge_factory(request_timeout_s=0.5)
    voice = await started_call(service, agent, "errs")
    voice.fail["recording.stop"] = (404, "no such recording")
    stop = {"type": "request", "method": "recording.stop", "params": {"id": "r-9"}}
    reply = await agent.command("errs", stop)
    assert reply is not None and reply["ok"] is False
    assert reply["error"] == {"code": 404, "message": "no such recording"}
    voice.respond = False
    timeout = await agent.command(
        "errs", {"type": "request", "method": "session.get", "params": {"keys": []}}
    )
    assert timeout is not None and timeout["error"]["code"] == 504
    voice.respond = True
    await voice.hangup()
    await voice.close()


async def test_events_are_forwarded_to_the_voice(bridge, agent: Agent) -> None:
    voice = await started_call(bridge, agent, "events")
    for event, data in [
        ("audio.speech.started", {"origin": "sender"}),
        ("input.transcript", {"delta": "hello"}),
        ("output.transcript.delta", {"delta": "Hi "}),
        ("output.transcript.done", {}),
        ("agent.tool.call", {"name": "lookup_order"}),
    ]:
        reply = await agent.command("events", {"type": "event", "event": event, "data": data})
        assert reply is not None and reply["ok"], reply
    await until(lambda: len(voice.events_received) >= 5, 5, "the events to reach the voice")
    assert [(e.event, e.data) for e in voice.events_received] == [
        ("audio.speech.started", {"origin": "sender"}),
        ("input.transcript", {"delta": "hello"}),
        ("output.transcript.delta", {"delta": "Hi "}),
        ("output.transcript.done", {}),
        ("agent.tool.call", {"name": "lookup_order"}),
    ]
    await voice.hangup()
    await voice.close()


async def test_bad_commands_get_errors_and_never_hurt_the_call(bridge, agent: Agent) -> None:
    voice = await started_call(bridge, agent, "bad")
    cases: list[tuple[Any, int]] = [
        ({"type": "teleport"}, 501),
        ({"type": "request", "method": "call.hangup", "params": {"reason": ""}}, 400),
        ({"type": "request", "method": "no.such.method"}, 400),
        ({"type": "event", "event": "dtmf", "data": {}}, 400),
        ({"type": "event", "event": "input.transcript", "data": {"delta": 5}}, 400),
        ({"type": "audio", "audio": "not bytes"}, 400),
        ({"type": "audio", "audio": b"\x00\x01\x02"}, 400),  # not whole 16-bit samples
        (
            {
                "type": "audio",
                "audio": b"\x00" * 320,
                "codec": {"name": "L16", "sample_rate": 16000, "channels": 1},
            },
            400,
        ),
        (
            {
                "type": "audio",
                "audio": b"\x00" * 320,
                "codec": {"name": "L16", "sample_rate": 8000, "channels": 1, "bit_depth": 8},
            },
            400,
        ),
        ({"type": "mark"}, 400),
        ({"no": "type"}, 400),
        # the voice's own operations, and params JSON cannot carry (bytes, integers beyond 2^53)
        ({"type": "request", "method": "session.terminate", "params": {"reason": "x"}}, 400),
        ({"type": "request", "method": "session.initialize", "params": {}}, 400),
        ({"type": "request", "method": "session.set", "params": {"data": {"blob": b"\x00"}}}, 400),
        ({"type": "request", "method": "session.set", "params": {"data": {"big": 2**60}}}, 400),
    ]
    for body, code in cases:
        reply = await agent.command("bad", body)
        assert reply is not None and reply["ok"] is False and reply["error"]["code"] == code, (body, reply)
        validate_body(reply, kind="reply")
        if body.get("audio") == b"\x00\x01\x02":
            assert "3 bytes is not whole samples of L16/8000/1" in reply["error"]["message"], reply
    # raw garbage, and a rejected command without reply_to -> command.rejected upstream
    assert agent.channel is not None
    exchange = await agent.channel.get_exchange(f"{agent.prefix}.commands", ensure=False)
    await exchange.publish(aio_pika.Message(b"\xc1\xc1garbage", correlation_id="c-1"), routing_key="bad")
    rejected = await agent.wait_event("command.rejected", "bad")
    assert rejected.body["data"]["code"] == 400 and rejected.body["data"]["correlation_id"] == "c-1"
    validate_body(rejected.body, kind="event")
    ping = await voice.request("ping", {"t0": 1700000000000})
    assert ping.ok
    assert voice.played.frames == []  # none of the rejected audio was played, padded or not
    await voice.hangup()
    await voice.close()
    ended = await agent.wait_event("session.ended", "bad")
    assert ended.body["data"]["counters"]["commands_rejected"] == len(cases) + 1


async def test_commands_for_unknown_sessions_go_to_the_unroutable_exchange(
    bridge, agent: Agent, amqp_url: str
) -> None:
    await agent.command("nobody-home", {"type": "clear"}, reply=False)
    conn = await aio_pika.connect(amqp_url)
    channel = await conn.channel()
    queue = await channel.get_queue(f"{agent.prefix}.unroutable", ensure=True)
    for _ in range(50):
        message = await queue.get(fail=False)
        if message is not None:
            break
        await asyncio.sleep(0.05)
    assert message is not None and msgpack.unpackb(message.body) == {"type": "clear"}
    await conn.close()


# docs/amqp-contract.md: the inspection queue keeps at most 10 000 messages for one hour, oldest dropped first
UNROUTABLE_DOCUMENTED = {"x-max-length": 10_000, "x-overflow": "drop-head", "x-message-ttl": 3_600_000}


async def test_the_unroutable_queue_is_bounded_as_documented(bridge, agent: Agent, amqp_url: str) -> None:
    name = f"{agent.prefix}.unroutable"
    conn = await aio_pika.connect(amqp_url)
    try:
        # The broker refuses a re-declaration that differs in any argument: it holds exactly these.
        channel = await conn.channel()
        await channel.declare_queue(name, durable=True, arguments=UNROUTABLE_DOCUMENTED)
        for key, other in (
            ("x-max-length", 10_001),
            ("x-overflow", "reject-publish"),
            ("x-message-ttl", 60_000),
        ):
            channel = await conn.channel()
            with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed):
                await channel.declare_queue(
                    name, durable=True, arguments={**UNROUTABLE_DOCUMENTED, key: other}
                )
        # And it behaves so: five beyond the bound push the five oldest out.
        channel = await conn.channel(publisher_confirms=False)
        commands = await channel.get_exchange(f"{agent.prefix}.commands", ensure=False)
        for n in range(10_005):
            await commands.publish(
                aio_pika.Message(msgpack.packb({"type": "clear", "n": n})), routing_key=f"gone-{n}"
            )
        queue = await channel.declare_queue(name, passive=True)

        async def count() -> int:
            declared = await channel.declare_queue(name, passive=True)
            return int(declared.declaration_result.message_count or 0)

        deadline = asyncio.get_running_loop().time() + 20
        while (held := await count()) < 10_000 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        assert held == 10_000
        oldest = await queue.get(fail=False)
        assert oldest is not None and msgpack.unpackb(oldest.body)["n"] == 5
    finally:
        await conn.close()


async def test_a_command_for_an_unknown_session_is_answered_404_and_still_kept_for_inspection(
    bridge_factory: BridgeFactory, agent: Agent, amqp_url: str
) -> None:
    await bridge_factory(instance_id="replica-a")
    await bridge_factory(instance_id="replica-b")  # two replicas: exactly one of them answers
    asked = asyncio.get_running_loop().time()
    reply = await agent.command("gone-call", {"type": "request", "method": "ping", "params": {"t0": 1}})
    assert asyncio.get_running_loop().time() - asked < 5.0  # at once, not after the caller's 10 s timeout
    assert reply is not None and reply["ok"] is False and reply["error"]["code"] == 404
    assert reply["session_id"] == "gone-call" and "gone-call" in reply["error"]["message"]
    validate_body(reply, kind="reply")
    # One answer, not one per replica. A second replica's copy would travel beside the first answer; each
    # later round trip starts after the previous answer, so by the last one any duplicate has arrived.
    for n in range(3):
        again = await agent.command(f"gone-{n}", {"type": "request", "method": "ping", "params": {"t0": 1}})
        assert again is not None and again["error"]["code"] == 404
    assert len(agent.reply_ids) == 4 and len(set(agent.reply_ids)) == 4, agent.reply_ids
    conn = await aio_pika.connect(amqp_url)
    channel = await conn.channel()
    inspection = await channel.get_queue(f"{agent.prefix}.unroutable", ensure=True)
    kept = await inspection.get(fail=False)
    assert kept is not None and msgpack.unpackb(kept.body)["method"] == "ping"
    await conn.close()


async def test_published_messages_validate_against_the_schemas(
    bridge_factory: BridgeFactory, agent: Agent
) -> None:
    since = time.time()
    service = await bridge_factory(mirror_out=True)
    voice = await started_call(service, agent, "schema")
    await voice.send_audio(tone(300, 300, 8000))
    await voice.dtmf("5")
    await voice.event(
        "audio.info",
        {
            "read": {"bytes": 0, "bytes_per_second": 0, "bytes_total": 0},
            "write": {"bytes": 320, "bytes_per_second": 106.66666666666667, "bytes_total": 320},
        },
    )
    await agent.command("schema", {"type": "audio", "audio": tone(300, 200, 8000)})
    await agent.command("schema", {"type": "mark", "name": "m"})
    await agent.wait_event("playout.mark", "schema")
    unowned = await agent.command(
        "nobody-owns-this", {"type": "request", "method": "ping", "params": {"t0": 1}}
    )
    assert unowned is not None and unowned["error"]["code"] == 404  # the 404 responder's reply too
    await voice.hangup()
    await agent.wait_event("session.ended", "schema")
    await agent.wait_for(lambda: any(r.body["direction"] == "out" for r in agent.audio))
    kinds = {r.body["type"] for r in agent.events}
    assert {
        "session.started",
        "session.updated",
        "dtmf",
        "audio.info",
        "playout.mark",
        "call.hangup",
        "session.ended",
    } <= kinds
    for received in agent.events:
        validate_body(received.body, kind="event")
        assert received.message.content_type == "application/msgpack"
        assert received.message.type == received.body["type"]
        assert received.message.app_id == "rtvbp-bridge"
        assert received.message.headers["session_id"] == "schema"
    for received in agent.audio:
        validate_body(received.body, kind="audio")
    assert agent.reply_messages
    assert_message_properties(
        [r.message for r in agent.events + agent.audio] + list(agent.reply_messages.values()), since
    )
    await voice.close()


def assert_message_properties(published: list[aio_pika.abc.AbstractIncomingMessage], since: float) -> None:
    """docs/amqp-contract.md: every message is transient, with a unique 32-hex message_id and a timestamp."""
    for message in published:
        assert message.delivery_mode == aio_pika.DeliveryMode.NOT_PERSISTENT, message
        assert re.fullmatch(r"[0-9a-f]{32}", message.message_id or ""), message.message_id
        assert message.timestamp is not None
        assert int(since) <= message.timestamp.timestamp() <= time.time() + 1, message.timestamp
    assert len({m.message_id for m in published}) == len(published)
