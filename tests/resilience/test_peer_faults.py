"""Voice peers and consumers that misbehave: vanish, go half-open, stop reading, flood, never read replies."""

from __future__ import annotations

import asyncio
import re
import socket
import time
import uuid

import aio_pika
import msgpack
import pytest

from bridge.server.call import Call
from bridge.service import Service
from bridge.tools.voicepeer import VoicePeer
from tests.conftest import BridgeFactory, ws_url
from tests.resilience.conftest import Bystander, speech, started_call
from tests.resilience.rabbit import until
from tests.resilience.tcpproxy import TcpProxy
from tests.support.amqp import Agent


async def proxied_call(service: Service, agent: Agent, session: str) -> tuple[VoicePeer, TcpProxy]:
    proxy = TcpProxy("127.0.0.1", service.server.port)
    port = await proxy.start()
    voice = VoicePeer(f"ws://127.0.0.1:{port}/", session_id=session)
    await voice.connect(ping_interval=None)  # the voice side must not notice the fault on its own
    await voice.initialize()
    await agent.wait_event("session.started", session)
    return voice, proxy


async def test_voice_vanishing_with_a_tcp_reset_ends_the_call_as_a_disconnect(
    service: Service, agent: Agent, bystander: Bystander
) -> None:
    voice, proxy = await proxied_call(service, agent, "reset")
    try:
        pcm = speech(2, 25)
        await voice.stream_audio(pcm)
        queued = await agent.command("reset", {"type": "audio", "audio": b"\x01\x00" * 16000})  # 2 s
        assert queued is not None and queued["ok"]
        await asyncio.sleep(0.3)
        proxy.reset()
        ended = await agent.wait_event("session.ended", "reset", timeout=5)
        data = ended.body["data"]
        assert data["reason"] == "disconnect", data
        counters = data["counters"]
        assert counters["bytes_in"] == len(pcm) and counters["dropped_in_bytes"] == 0
        # what was queued for the caller and never played is counted, not silently gone
        assert counters["bytes_out"] + counters["dropped_out_bytes"] == 32000, counters
        assert counters["dropped_out_bytes"] > 0
        await until(lambda: len(service.server.calls) == 1, 5, "only the bystander to be left")
        await bystander.finish()
    finally:
        await proxy.stop()


@pytest.mark.slow
async def test_half_open_voice_is_caught_by_keepalive(
    bridge_factory: BridgeFactory, agent: Agent, instance_id: str
) -> None:
    service = await bridge_factory(instance_id=instance_id, ws_ping_interval_s=0.5, ws_ping_timeout_s=1.0)
    bystander = await Bystander(service, agent).start()
    voice, proxy = await proxied_call(service, agent, "halfopen")
    try:
        proxy.freeze()  # no FIN, no RST: bytes just stop arriving either way
        frozen_at = time.monotonic()
        ended = await agent.wait_event("session.ended", "halfopen", timeout=15)
        detected = time.monotonic() - frozen_at
        data = ended.body["data"]
        assert data["reason"] == "disconnect", data
        assert "1011" in data["detail"] or "keepalive" in data["detail"], data
        assert detected < 8, detected  # interval + timeout + close timeout, not the TCP timeout (minutes)
        await until(lambda: len(service.server.calls) == 1, 5, "only the bystander to be left")
        await bystander.finish()
    finally:
        await proxy.stop()
        await bystander.abandon()
        await voice.close()


async def non_reading_voice(service: Service, agent: Agent, session: str) -> VoicePeer:
    """A voice with a tiny receive window that stops reading once the call is up (a stuck peer)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", service.server.port))
    sock.setblocking(False)
    voice = VoicePeer(ws_url(service), session_id=session)
    await voice.connect(sock=sock, ping_interval=None)
    await voice.initialize()
    await agent.wait_event("session.started", session)
    assert voice.ws is not None
    voice.ws.transport.pause_reading()
    return voice


# The documented per-socket limits (docs/reliability.md), written out here rather than imported.
MiB = 1024 * 1024
COMMANDS_REFUSED_ABOVE = 1 * MiB  # unsent bytes: commands get 413
DISCONNECTED_ABOVE = 4 * MiB  # unsent bytes: the socket is closed with 1008
PACER_HOLDS_ABOVE = 32 * 1024  # unsent bytes: audio waits in the playout buffer


def call_of(service: Service, session: str) -> Call:
    for call in service.server.calls:
        if call.session.init_params is not None and call.session.init_params.call.session_id == session:
            return call
    raise AssertionError(f"no live call {session!r}")


def unsent_bytes(call: Call) -> int:
    return int(call.ws.transport.get_write_buffer_size())


async def test_a_voice_that_stops_reading_never_stalls_the_bridge_or_fills_its_memory(
    service: Service, agent: Agent, bystander: Bystander
) -> None:
    voice = await non_reading_voice(service, agent, "stuck")
    stuck = call_of(service, "stuck")
    text = "x" * 32_000
    flood = [
        agent.command(
            "stuck", {"type": "event", "event": "input.transcript", "data": {"delta": f"{n}:{text}"}}
        )
        for n in range(200)
    ]
    replies = await asyncio.gather(*flood)
    ok = [r for r in replies if r is not None and r["ok"]]
    refused = [r for r in replies if r is not None and not r["ok"]]
    assert ok and refused and len(ok) + len(refused) == 200
    assert {r["error"]["code"] for r in refused} == {413}
    assert all("not reading" in r["error"]["message"] for r in refused)
    # refused only beyond 1 MiB unsent; accepted below it, so what is held is 1 MiB plus the few events
    # whose sends were already under way when the bound was crossed
    refused_at = [int(re.findall(r"(\d+) bytes", r["error"]["message"])[0]) for r in refused]
    assert min(refused_at) > COMMANDS_REFUSED_ABOVE, min(refused_at)
    assert COMMANDS_REFUSED_ABOVE < unsent_bytes(stuck) <= COMMANDS_REFUSED_ABOVE + 256 * 1024
    # the other call never waited on this socket
    assert await bystander.command_round_trip() < 0.5
    # Audio for the stuck voice waits in the playout buffer, not in the socket's. Measured against a
    # healthy call's second of audio played meanwhile on the same loop: by its mark, none of ours went.
    reference = await started_call(service, agent, "reference")
    second = b"\x03\x00" * 8000
    for session in ("stuck", "reference"):
        await agent.command(session, {"type": "audio", "audio": second}, reply=False)
        await agent.command(session, {"type": "mark", "name": "played"}, reply=False)
    await agent.wait_event("playout.mark", "reference", timeout=5)
    assert unsent_bytes(stuck) > PACER_HOLDS_ABOVE
    assert stuck.stats.frames_out == 0 and stuck.playout is not None and stuck.playout.queued_ms >= 900
    # when the voice reads again it gets exactly what was acknowledged, in order, and the call goes on
    assert voice.ws is not None
    voice.ws.transport.resume_reading()
    await until(lambda: len(voice.events_received) == len(ok), 10, "the acknowledged events to arrive")
    await agent.wait_event("playout.mark", "stuck", timeout=5)  # and the held audio plays
    assert voice.played.audio == second
    assert [int(e.data["delta"].split(":")[0]) for e in voice.events_received] == sorted(
        int(e.data["delta"].split(":")[0]) for e in voice.events_received
    )
    pong = await agent.command("stuck", {"type": "request", "method": "ping", "params": {"t0": 1}})
    assert pong is not None and pong["ok"]
    await voice.hangup()
    ended = await agent.wait_event("session.ended", "stuck", timeout=10)
    assert ended.body["data"]["reason"] == "hangup"
    assert ended.body["data"]["counters"]["commands_rejected"] == len(refused)
    await voice.close()
    await reference.hangup()
    await reference.close()
    await bystander.finish()


@pytest.mark.slow
async def test_a_voice_flooding_requests_without_reading_is_disconnected(
    service: Service, agent: Agent, bystander: Bystander
) -> None:
    voice = await non_reading_voice(service, agent, "pingflood")
    flooded = call_of(service, "pingflood")
    assert voice.ws is not None
    blob = "p" * 200_000  # ping data is echoed back: each request makes the bridge owe 200 kB
    for n in range(60):
        try:
            await voice.ws.send(
                f'{{"version":"1","id":"f{n}","method":"ping","params":{{"t0":1,"data":{{"b":"{blob}"}}}}}}'
            )
        except Exception:
            break
    ended = await agent.wait_event("session.ended", "pingflood", timeout=15)
    data = ended.body["data"]
    assert data["reason"] == "error" and "stopped reading" in data["detail"], data
    # cut off at the first answer beyond 4 MiB unsent (one 200 kB echo past it at most), with 1008
    unsent_at_cut = int(re.findall(r"\((\d+) bytes unsent\)", data["detail"])[0])
    assert DISCONNECTED_ABOVE < unsent_at_cut <= DISCONNECTED_ABOVE + 210_000, unsent_at_cut
    close = flooded.ws.protocol.close_sent
    assert close is not None and close.code == 1008, close
    await bystander.finish()


async def raw_command(agent: Agent, session: str, body: object, **props: object) -> None:
    assert agent.channel is not None
    exchange = await agent.channel.get_exchange(f"{agent.prefix}.commands", ensure=False)
    payload = body if isinstance(body, bytes) else msgpack.packb(body, use_bin_type=True)
    await exchange.publish(aio_pika.Message(payload, **props), routing_key=session)  # type: ignore[arg-type]


async def test_replies_nobody_reads_never_block_the_bridge(
    service: Service, agent: Agent, bystander: Bystander, amqp_url: str, prefix: str
) -> None:
    voice = await started_call(service, agent, "deaf")
    conn = await aio_pika.connect(amqp_url)
    channel = await conn.channel()
    unread = await channel.declare_queue(f"{prefix}.unread-{uuid.uuid4().hex[:6]}", auto_delete=False)
    try:
        ping = {"type": "request", "method": "ping", "params": {"t0": 1}}
        for n in range(200):
            await raw_command(agent, "deaf", ping, reply_to=unread.name, correlation_id=f"u{n}")
        # replies to a queue that does not exist, and to a direct reply-to consumer that is gone
        await raw_command(agent, "deaf", ping, reply_to=f"{prefix}.no-such-queue", correlation_id="gone-1")
        await raw_command(
            agent, "deaf", ping, reply_to="amq.rabbitmq.reply-to.g1hkAAAAAA", correlation_id="gone-2"
        )
        await voice.dtmf("3")
        await agent.wait_event("dtmf", "deaf", timeout=5)  # upstream events still flow after all that
        await until(lambda: voice.requests_answered >= 202, 10, "the voice to answer every request")
        declared = await channel.declare_queue(unread.name, passive=True)
        assert declared.declaration_result.message_count == 200
        assert service.broker.control.failures == 0  # no reply was a poison message for the publisher
        assert await bystander.command_round_trip() < 1.0
        await voice.hangup()
        ended = await agent.wait_event("session.ended", "deaf", timeout=10)
        assert ended.body["data"]["counters"]["commands_received"] == 202
        await bystander.finish()
    finally:
        await unread.delete(if_unused=False, if_empty=False)
        await conn.close()
        await voice.close()


async def test_a_command_flood_is_answered_in_full_and_bounded(
    service: Service, agent: Agent, bystander: Bystander
) -> None:
    voice = await started_call(service, agent, "flood")
    pings = [
        agent.command("flood", {"type": "request", "method": "ping", "params": {"t0": n}}, timeout=20)
        for n in range(1, 501)
    ]
    second = b"\x02\x00" * 8000  # 1 s of audio per command, 90 s in all: the playout bound is 60 s
    audio = [agent.command("flood", {"type": "audio", "audio": second}, timeout=20) for _ in range(90)]
    replies = await asyncio.gather(*pings, *audio)
    ping_replies, audio_replies = replies[:500], replies[500:]
    failed = [r for r in ping_replies if r is None or not r["ok"]]
    assert not failed, (len(failed), failed[:3])
    assert sorted(r["result"]["t0"] for r in ping_replies if r is not None) == list(range(1, 501))
    full = [r for r in audio_replies if r is not None and not r["ok"]]
    assert {r["error"]["code"] for r in full} == {413}
    queued = [r for r in audio_replies if r is not None and r["ok"]]
    assert 58 <= len(queued) <= 62 and len(queued) + len(full) == 90  # 60 s fit, give or take what played
    assert await bystander.command_round_trip() < 1.0
    cleared = await agent.command("flood", {"type": "clear"})
    assert cleared is not None and cleared["ok"] and cleared["result"]["bridge_bytes"] > 50 * 16000
    await voice.hangup()
    ended = await agent.wait_event("session.ended", "flood", timeout=10)
    counters = ended.body["data"]["counters"]
    assert counters["commands_received"] == 591 and counters["commands_rejected"] == len(full)
    await voice.close()
    await bystander.finish()
