"""RTVBP rules on the live server: bad frames, early audio, unknown methods, terminal close order."""

from __future__ import annotations

import asyncio
import json
import time

from websockets.asyncio.client import connect

from bridge.protocol.envelope import Response, decode_frame
from bridge.tools.voicepeer import L16_8K, VoicePeer, codec
from tests.conftest import BridgeFactory, ws_url
from tests.support.amqp import Agent


async def next_text(ws, timeout: float = 2.0) -> str:  # type: ignore[no-untyped-def]
    while True:
        message = await asyncio.wait_for(ws.recv(), timeout)
        if isinstance(message, str):
            return message


async def test_malformed_frames_are_dropped_and_the_socket_stays_open(bridge, agent: Agent) -> None:
    async with VoicePeer(ws_url(bridge), session_id="malformed") as voice:
        await voice.initialize()
        assert voice.ws is not None
        for bad in [
            "{",
            '{"version":"1"}',
            '{"version":"invalid"}',
            '{"version":1,"id":"x","event":"dtmf"}',
            '{"version":"1","id":7,"method":"ping"}',
            "[]",
            '"text"',
            '{"version":"1","id":"a","id":"b"}',
        ]:
            await voice.ws.send(bad)
        response = await voice.request("ping", {"t0": 1700000000000})
        assert response.ok  # still serving
        assert len(voice.texts) == 2  # the initialize and ping answers; nothing answered the bad frames
        await voice.hangup()
    ended = await agent.wait_event("session.ended", "malformed")
    assert ended.body["data"]["counters"]["malformed_frames"] == 8


async def test_unknown_method_gets_501_and_invalid_params_400(bridge) -> None:
    async with VoicePeer(ws_url(bridge), session_id="errors") as voice:
        await voice.initialize()
        unknown = await voice.request("transport.webrtc.offer", {})
        assert unknown.error is not None
        assert (unknown.error.code, unknown.error.message) == (501, "unknown method: transport.webrtc.offer")
        voice_side = await voice.request("call.hangup", {"reason": "x"})  # a voice-handled method sent to us
        assert voice_side.error is not None and voice_side.error.code == 501
        empty_reason = await voice.request("session.terminate", {"reason": ""})
        assert empty_reason.error is not None
        assert (empty_reason.error.code, empty_reason.error.message) == (
            400,
            "reason must contain at least 1 character(s)",
        )
        zero_ping = await voice.request("ping", {"t0": 0})
        assert zero_ping.error is not None and zero_ping.error.code == 400 and "t0" in zero_ping.error.message
        second_init = await voice.request(
            "session.initialize",
            {
                "application": {"id": "a"},
                "call": {"id": "c", "session_id": "errors", "from": "1", "to": "2"},
                "audio_codec_offerings": [L16_8K],
                "metadata": None,
            },
        )
        assert second_init.error is not None and second_init.error.code == 500


async def test_ping_is_answered_with_receive_and_handling_times(bridge) -> None:
    async with VoicePeer(ws_url(bridge), session_id="ping") as voice:
        t0 = int(time.time() * 1000) - 40
        response = await voice.request("ping", {"t0": t0, "rtt": 42, "data": {"b": 1, "a": [1, 2]}})
        assert response.ok and isinstance(response.result, dict)
        result = response.result
        assert result["t0"] == t0 and result["t1"] >= t0 and result["t2"] >= result["t1"]
        assert result["owd"] == result["t2"] - t0
        assert result["data"] == {"a": [1, 2], "b": 1}
        assert list(result) == ["t0", "t1", "t2", "owd", "data"]
        bare = await voice.request("ping", {"t0": t0})
        assert isinstance(bare.result, dict) and "data" not in bare.result


async def test_no_acceptable_codec_is_a_clear_400(bridge) -> None:
    async with VoicePeer(ws_url(bridge), session_id="codec", offers=[codec(44100)]) as voice:
        response = await voice.request(
            "session.initialize",
            {
                "application": {"id": "a"},
                "call": {"id": "c", "session_id": "codec", "from": "1", "to": "2"},
                "audio_codec_offerings": [
                    {"id": "PCMU/8000/1", "name": "PCMU", "sample_rate": 8000, "bit_depth": 8, "channels": 1}
                ],
                "metadata": None,
            },
        )
        assert response.error is not None and response.error.code == 400
        assert (
            "no acceptable audio codec" in response.error.message and "PCMU/8000/1" in response.error.message
        )


async def test_codec_preference_picks_the_preferred_offer_verbatim(bridge_factory: BridgeFactory) -> None:
    service = await bridge_factory(codec_preference="L16/16000/1,L16/8000/1")
    offers = [L16_8K, codec(16000)]
    async with VoicePeer(ws_url(service), session_id="pref", offers=offers) as voice:
        assert await voice.initialize() == codec(16000)


async def test_binary_before_initialize_is_dropped_and_counted(bridge, agent: Agent) -> None:
    async with VoicePeer(ws_url(bridge), session_id="early") as voice:
        await voice.send_audio(b"\x01\x00" * 160)
        await voice.send_audio(b"\x01\x00" * 160)
        await voice.initialize()
        await voice.send_audio(b"\x02\x00" * 160)
        await voice.hangup()
    ended = await agent.wait_event("session.ended", "early")
    counters = ended.body["data"]["counters"]
    assert counters["early_binary_frames"] == 2
    assert counters["bytes_in"] == 320


async def test_oversize_message_closes_with_1009(bridge_factory: BridgeFactory) -> None:
    service = await bridge_factory(max_message_bytes=4096)
    async with VoicePeer(ws_url(service), session_id="big") as voice:
        await voice.initialize()
        await voice.send_audio(b"\x00" * 5000)
        assert await voice.wait_closed() == 1009


async def test_invalid_utf8_text_closes_with_1007(bridge) -> None:
    async with connect(ws_url(bridge)) as ws:
        async with ws.send_context():
            ws.protocol.send_text(b'{"version":"1","id":"\xff\xfe","event":"x"}')
        await asyncio.wait_for(ws.wait_closed(), 3)
        assert ws.close_code == 1007


async def test_session_terminate_is_answered_then_closed_1000(bridge, agent: Agent) -> None:
    async with connect(ws_url(bridge), subprotocols=["rtvbp.v1"]) as ws:  # type: ignore[list-item]
        init = {
            "application": {"id": "a"},
            "call": {"id": "c", "session_id": "term", "from": "1", "to": "2"},
            "audio_codec_offerings": [L16_8K],
            "metadata": {"k": "v"},
        }
        await ws.send(
            json.dumps({"version": "1", "id": "i1", "method": "session.initialize", "params": init})
        )
        await next_text(ws)
        await ws.send(
            '{"version":"1","id":"t1","method":"session.terminate","params":{"reason":"completed"}}'
        )
        answered_at = time.monotonic()
        frame = decode_frame(await next_text(ws))
        assert isinstance(frame, Response) and frame.response == "t1" and frame.result == {}
        await asyncio.wait_for(ws.wait_closed(), 3)
        closed_after = time.monotonic() - answered_at
        assert ws.close_code == 1000
        assert closed_after >= 0.08  # the grace legacy peers need to dispatch the reply first
    ended = await agent.wait_event("session.ended", "term")
    assert ended.body["data"]["reason"] == "terminate"


async def test_application_hangup_with_legacy_post_terminal_terminate(bridge, agent: Agent) -> None:
    voice = VoicePeer(ws_url(bridge), session_id="legacy", legacy_terminate_after_terminal=True)
    async with voice:
        await voice.initialize()
        await agent.wait_event("session.started", "legacy")
        reply = await agent.command(
            "legacy", {"type": "request", "method": "call.hangup", "params": {"reason": "caller"}}
        )
        assert reply == {"type": "reply", "session_id": "legacy", "ok": True, "result": {}}
        assert await voice.wait_closed() == 1000
    ended = await agent.wait_event("session.ended", "legacy")
    assert ended.body["data"]["reason"] == "hangup"
