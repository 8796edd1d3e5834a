"""Broker faults under live calls: connections killed, queue deleted, memory alarm, broker down at start.

A full broker restart mid-call is covered by tests/integration/test_ownership_and_faults.py.
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from typing import Any

import aio_pika
import aiormq
import msgpack
import pytest

from bridge.broker.names import session_key
from bridge.service import Service
from bridge.tools.voicepeer import RemoteError, VoicePeer
from tests.conftest import BridgeFactory, ws_url
from tests.resilience.conftest import (
    Bystander,
    assert_event_seq_contiguous,
    assert_gapless,
    events_of,
    speech,
    started_call,
)
from tests.resilience.rabbit import (
    close_connection,
    delete_queue,
    memory_alarm,
    queue_consumers,
    until,
    until_consumers,
)
from tests.resilience.tcpproxy import broker_proxy
from tests.support.amqp import Agent


def readyz(service: Service) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{service.server.port}/readyz", timeout=2) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code


async def ping_command(agent: Agent, session: str, timeout: float = 5.0) -> dict[str, object]:
    reply = await agent.command(
        session, {"type": "request", "method": "ping", "params": {"t0": 1}}, timeout=timeout
    )
    assert reply is not None
    return reply


@pytest.mark.slow
async def test_publisher_connection_killed_mid_call_loses_nothing(
    service: Service, agent: Agent, instance_id: str
) -> None:
    voice = await started_call(service, agent, "pubkill")
    pcm = speech(0, 150)  # 3 s
    talking = asyncio.create_task(voice.stream_audio(pcm))
    await agent.wait_for(lambda: len(_audio(agent, "pubkill")) >= 5, timeout=10)  # mid-stream
    assert await close_connection(f"rtvbp-bridge {instance_id} publish") == 1
    await voice.dtmf("5")  # a control event while the publisher is reconnecting
    await talking
    await until(lambda: service.broker.reconnects >= 1, 10, "the publisher to reconnect")
    await agent.wait_event("dtmf", "pubkill", timeout=10)
    assert (await ping_command(agent, "pubkill"))["ok"]  # downstream never depended on the publisher
    await voice.hangup()
    ended = await agent.wait_event("session.ended", "pubkill", timeout=10)
    counters = ended.body["data"]["counters"]
    assert ended.body["data"]["reason"] == "hangup"
    assert counters["dropped_in_bytes"] == 0 and counters["bytes_in"] == len(pcm)
    await agent.wait_for(lambda: sum(len(a) for a in _audio(agent, "pubkill")) >= len(pcm), timeout=10)
    assert_gapless(agent, "pubkill", pcm)
    assert_event_seq_contiguous(agent, "pubkill")
    assert "audio.gap" not in agent.event_types("pubkill")
    await voice.close()


def _audio(agent: Agent, session: str) -> list[bytes]:
    return [r.body["audio"] for r in agent.audio if r.body["session_id"] == session]


@pytest.mark.slow
async def test_the_404_responder_survives_its_queue_being_deleted_and_a_reconnect(
    service: Service, agent: Agent, instance_id: str, prefix: str
) -> None:
    voice = await started_call(service, agent, "responder")
    assert (await ping_command(agent, "no-such-call"))["error"] == {
        "code": 404,
        "message": "no bridge has session 'no-such-call': the call has ended or never started",
    }
    await delete_queue(f"{prefix}.unroutable.responder")  # an operator tidying up
    assert await close_connection(f"rtvbp-bridge {instance_id} consume") == 1
    await until(lambda: service.broker.reconnects >= 1, 10, "the consumer to reconnect")
    # the restore re-created the queue instead of failing: the live call and the responder both work
    await until_consumers(f"{prefix}.session.responder", 1, 10)
    assert (await ping_command(agent, "responder"))["ok"]
    await until_consumers(f"{prefix}.unroutable.responder", 1, 10)
    assert (await ping_command(agent, "no-such-call"))["error"]["code"] == 404
    await voice.hangup()
    await voice.close()


@pytest.mark.slow
async def test_consumer_connection_killed_mid_call_reclaims_the_session(
    service: Service, agent: Agent, instance_id: str, prefix: str
) -> None:
    voice = await started_call(service, agent, "conkill")
    bystander = await Bystander(service, agent).start()
    queue = f"{prefix}.session.conkill"
    assert await asyncio.to_thread(queue_consumers, queue) == 1
    assert await close_connection(f"rtvbp-bridge {instance_id} consume") == 1
    await until(lambda: service.broker.reconnects >= 1, 10, "the consumer to reconnect")
    await until_consumers(queue, 1, 10)  # the command queue re-claimed
    # both calls take commands again, and the caller's audio never stopped flowing
    assert (await ping_command(agent, "conkill"))["ok"]
    await voice.stream_audio(speech(1, 25))
    await voice.hangup()
    ended = await agent.wait_event("session.ended", "conkill", timeout=10)
    assert ended.body["data"]["reason"] == "hangup"
    assert ended.body["data"]["counters"]["dropped_in_bytes"] == 0
    await bystander.finish()
    await voice.close()


@pytest.mark.slow
async def test_command_queue_deleted_under_a_live_session_is_reclaimed(
    service: Service, agent: Agent, prefix: str
) -> None:
    voice = await started_call(service, agent, "qdel")
    bystander = await Bystander(service, agent).start()
    queue = f"{prefix}.session.{session_key('qdel')}"
    await delete_queue(queue)
    await until_consumers(queue, 1, 10)  # the command queue re-claimed
    assert (await ping_command(agent, "qdel"))["ok"]
    played = await agent.command("qdel", {"type": "audio", "audio": b"\x07\x00" * 400})
    assert played is not None and played["ok"]
    await voice.hangup()
    ended = await agent.wait_event("session.ended", "qdel", timeout=10)
    assert ended.body["data"]["reason"] == "hangup"
    assert voice.played.audio[:800] == b"\x07\x00" * 400
    await bystander.finish()
    await voice.close()


@pytest.mark.slow
async def test_broker_down_at_start_up_then_ready_when_it_returns(
    bridge_factory: BridgeFactory, agent: Agent, amqp_url: str, instance_id: str
) -> None:
    async with broker_proxy(amqp_url) as (proxy, proxied_url):
        proxy.down()
        service = await bridge_factory(amqp_url=proxied_url, instance_id=instance_id, publish_timeout_s=1.0)
        # the process serves (health ok) but says it is not ready, and refuses calls with a clear 503
        assert not service.broker.ready()
        assert await asyncio.to_thread(readyz, service) == 503
        refused = VoicePeer(ws_url(service), session_id="early-caller")
        await refused.connect()
        with pytest.raises(RemoteError) as error:
            await refused.initialize()
        assert error.value.code == 503 and "broker" in error.value.message
        assert await refused.wait_closed() == 1011
        assert proxy.refused >= 1  # it kept trying
        proxy.up()
        await until(service.broker.ready, 15, "the bridge to connect once the broker is back")
        assert await asyncio.to_thread(readyz, service) == 200
        voice = await started_call(service, agent, "late-caller")
        assert (await ping_command(agent, "late-caller"))["ok"]
        await voice.hangup()
        await agent.wait_event("session.ended", "late-caller")
        await voice.close()
        assert "early-caller" not in {r.body["session_id"] for r in agent.events}


async def test_a_broker_too_slow_for_the_audio_is_reported_as_a_buffer_overflow_gap(
    bridge_factory: BridgeFactory, agent: Agent, amqp_url: str, instance_id: str
) -> None:
    """Connected and not blocking, but not confirming (a stall): beyond BRIDGE_AUDIO_BACKLOG_MS the caller's
    audio is dropped and reported as `buffer_overflow`, not as `broker_unavailable`."""
    async with broker_proxy(amqp_url) as (proxy, proxied_url):
        service = await bridge_factory(
            amqp_url=proxied_url, instance_id=instance_id, audio_backlog_ms=200, publish_timeout_s=5.0
        )
        voice = await started_call(service, agent, "overflow")
        spoken = speech(0, 25)  # 0.5 s while the broker stalls: more than the 200 ms backlog
        proxy.freeze()
        await voice.stream_audio(spoken)
        assert service.broker.ready() and not service.broker.blocked
        proxy.thaw()
        after = speech(1, 10)
        await voice.stream_audio(after)
        await voice.hangup()
        ended = await agent.wait_event("session.ended", "overflow", timeout=10)
        [gap] = events_of(agent, "overflow", "audio.gap")
        assert gap["data"]["reason"] == "buffer_overflow" and gap["data"]["direction"] == "in", gap
        counters = ended.body["data"]["counters"]
        assert counters["bytes_in"] == len(spoken) + len(after)
        assert counters["dropped_in_bytes"] == gap["data"]["dropped_bytes"] > 0
        delivered = sum(len(a) for a in _audio(agent, "overflow"))
        assert delivered + counters["dropped_in_bytes"] == counters["bytes_in"]
        await voice.close()


@pytest.mark.slow
async def test_a_publish_unconfirmed_for_10_s_is_retried_on_a_new_channel(
    bridge_factory: BridgeFactory, agent: Agent, amqp_url: str, instance_id: str
) -> None:
    """docs/reliability.md: a publish unconfirmed for 10 s is retried on a new channel (a stalled broker
    that comes back); nothing is lost, a duplicate would carry the same seq."""
    async with broker_proxy(amqp_url) as (proxy, proxied_url):
        service = await bridge_factory(amqp_url=proxied_url, instance_id=instance_id, publish_timeout_s=5.0)
        voice = await started_call(service, agent, "retry")
        control = service.broker.control
        first_channel = control._live  # the underlying channel it publishes on
        assert first_channel is not None
        proxy.freeze()
        asked = time.monotonic()
        await voice.dtmf("7")
        await until(lambda: control.retried >= 1, 15, "the unconfirmed dtmf to be retried")
        waited = time.monotonic() - asked
        proxy.thaw()
        assert 9.5 <= waited <= 13, waited
        await until(lambda: control._live not in (None, first_channel), 10, "a publish on a new channel")

        # nothing lost: the dtmf arrives (the stalled copy may arrive too: the same event, the same seq)
        def copies() -> list[dict[str, Any]]:
            return [r.body for r in agent.events if r.body["type"] == "dtmf"]

        await voice.hangup()
        await agent.wait_event("session.ended", "retry", timeout=10)  # published after the dtmf, in order
        assert copies() and {(c["seq"], c["data"]["digit"]) for c in copies()} == {(copies()[0]["seq"], "7")}
        await voice.close()


@pytest.mark.slow
async def test_a_stalled_broker_still_gets_initialize_answered_in_time(
    bridge_factory: BridgeFactory, amqp_url: str, instance_id: str
) -> None:
    """The broker stops answering without closing anything (a network stall): every broker step of a
    call's start shares the 1.5 s budget, so the voice hears 503 before its own 2 s timeout."""
    async with broker_proxy(amqp_url) as (proxy, proxied_url):
        service = await bridge_factory(amqp_url=proxied_url, instance_id=instance_id, publish_timeout_s=1.5)
        assert service.broker.ready()
        proxy.freeze()
        voice = VoicePeer(ws_url(service), session_id="stalled")
        await voice.connect()
        asked = asyncio.get_running_loop().time()
        with pytest.raises(RemoteError) as error:
            await voice.initialize()
        assert asyncio.get_running_loop().time() - asked < 2.0
        assert error.value.code == 503 and "broker" in error.value.message
        assert await voice.wait_closed() == 1011
        proxy.thaw()


@pytest.mark.slow
async def test_session_claimed_elsewhere_during_a_consumer_blip_ends_only_that_call(
    service: Service, agent: Agent, instance_id: str, prefix: str, amqp_url: str
) -> None:
    """Another replica takes the session's queue while our consuming connection is down: we must not
    keep a call nobody can command, and the other calls on the same connection must get theirs back."""
    voice = await started_call(service, agent, "squat")
    bystander = await Bystander(service, agent).start()
    squatter = await aio_pika.connect(amqp_url)
    try:
        grab = asyncio.create_task(squat_on(squatter, f"{prefix}.session.squat"))
        # The squatter polls every 10 ms and the bridge reconnects after 1 s, so the squatter nearly
        # always wins; on a loaded machine the bridge may re-claim first (legitimately): blip again.
        for _ in range(5):
            closed = 0
            for _ in range(20):  # (after a re-claim, wait for the reconnected consume connection)
                if closed := await close_connection(f"rtvbp-bridge {instance_id} consume"):
                    break
                await asyncio.sleep(0.5)
            assert closed == 1
            done, _ = await asyncio.wait({grab}, timeout=4)
            if done:
                break
        assert grab.done(), "the other replica never got the session's queue"
        await grab
        assert await voice.wait_closed(timeout=15) == 1011
        ended = await agent.wait_event("session.ended", "squat", timeout=10)
        assert ended.body["data"]["reason"] == "error"
        assert "ownership lost" in ended.body["data"]["detail"]
        assert service.broker.ready()
        await bystander.finish()  # its commands work on the restored connection
    finally:
        await squatter.close()
        await bystander.abandon()


async def squat_on(conn: aio_pika.abc.AbstractConnection, queue: str) -> None:
    """Take an exclusive queue the moment its owner lets go (a second replica claiming the session)."""
    while True:
        channel = await conn.channel()
        try:
            await channel.declare_queue(queue, exclusive=True, auto_delete=True)
            return
        except aiormq.exceptions.ChannelLockedResource:
            await asyncio.sleep(0.01)


async def hold_commands(amqp_url: str, prefix: str, session: str, ttl_ms: int, commands: list[dict]) -> None:  # type: ignore[type-arg]
    """Park commands in a queue that dead-letters them to the session after `ttl_ms`.

    During a memory alarm every publishing connection is blocked, the test's too; dead-lettering is the
    broker's own routing and is not. So commands published before the alarm arrive in the middle of it.
    """
    conn = await aio_pika.connect(amqp_url)
    try:
        channel = await conn.channel()
        queue = await channel.declare_queue(
            f"{prefix}.held-{session}",
            auto_delete=False,
            arguments={
                "x-message-ttl": ttl_ms,
                "x-dead-letter-exchange": f"{prefix}.commands",
                "x-dead-letter-routing-key": session,
                "x-expires": ttl_ms + 30_000,
            },
        )
        for command in commands:
            body, props = command["body"], command.get("props", {})
            await channel.default_exchange.publish(
                aio_pika.Message(msgpack.packb(body, use_bin_type=True), **props), routing_key=queue.name
            )
    finally:
        await conn.close()


@pytest.mark.slow
async def test_memory_alarm_mid_call_keeps_downstream_working_and_reports_the_loss(
    bridge_factory: BridgeFactory, agent: Agent, amqp_url: str, prefix: str, instance_id: str
) -> None:
    service = await bridge_factory(instance_id=instance_id, audio_backlog_ms=1000, mirror_out=True)
    voice = await started_call(service, agent, "alarm")
    assert agent._reply_queue is not None
    reply_to = agent._reply_queue.name
    prompt = b"\x09\x00" * 4000  # 0.5 s to play
    await hold_commands(
        amqp_url,
        prefix,
        "alarm",
        4000,  # long enough for rabbitmqctl to raise the alarm first, even on a busy machine
        [
            {
                "body": {"type": "audio", "audio": prompt},
                "props": {"reply_to": reply_to, "correlation_id": "a"},
            },
            {
                "body": {"type": "request", "method": "session.set", "params": {"data": {"lang": "de"}}},
                "props": {"reply_to": reply_to, "correlation_id": "s"},
            },
        ],
    )
    spoken = speech(3, 150)  # 3 s of caller audio while the broker refuses publishes; 1 s fits the backlog
    async with memory_alarm():
        await voice.stream_audio(spoken)
        # downstream kept working: the held commands reached the voice during the alarm
        await until(
            lambda: voice.variables.get("lang") == "de", 5, "the session.set request to reach the voice"
        )
        await until(lambda: len(voice.played.audio) >= len(prompt), 5, "the prompt to play")
        assert "a" not in agent.replies  # proof the alarm held: the reply waits for the unblock
    assert voice.played.audio[: len(prompt)] == prompt
    await agent.wait_for(lambda: "a" in agent.replies and "s" in agent.replies, timeout=15)
    assert agent.replies["a"]["ok"] and agent.replies["s"]["ok"]
    await voice.hangup()
    ended = await agent.wait_event("session.ended", "alarm", timeout=20)
    counters = ended.body["data"]["counters"]
    all_gaps = events_of(agent, "alarm", "audio.gap")
    # the alarm blocked publishers: the gap says the broker was unavailable, not merely slow
    assert all(g["data"]["reason"] == "broker_unavailable" for g in all_gaps)
    gaps = [g for g in all_gaps if g["data"]["direction"] == "in"]
    assert gaps, "dropped audio must be reported"
    assert counters["dropped_in_bytes"] == sum(g["data"]["dropped_bytes"] for g in gaps) > 0
    assert counters["dropped_in_chunks"] == sum(g["data"]["dropped_chunks"] for g in gaps)
    # the .out mirror of the prompt was dropped too: reported as its own direction, not as caller audio
    out_gaps = [g for g in all_gaps if g["data"]["direction"] == "out"]
    mirrored = sum(len(r.body["audio"]) for r in agent.audio if r.routing_key.endswith(".out"))
    assert out_gaps and mirrored + sum(g["data"]["dropped_bytes"] for g in out_gaps) == len(prompt)
    # what was delivered plus what was reported lost is exactly what the caller said
    chunks = {
        r.body["seq"]: r.body["audio"]
        for r in agent.audio
        if r.body["session_id"] == "alarm" and r.routing_key.endswith(".in")
    }
    lost = {s for g in gaps for s in range(g["data"]["first_seq"], g["data"]["last_seq"] + 1)}
    assert not lost & set(chunks)
    assert sorted(lost | set(chunks)) == list(range(len(lost) + len(chunks)))
    assert (
        sum(len(a) for a in chunks.values()) + counters["dropped_in_bytes"]
        == counters["bytes_in"]
        == len(spoken)
    )
    assert_event_seq_contiguous(agent, "alarm")
    await voice.close()


@pytest.mark.slow
async def test_call_refused_during_a_memory_alarm_leaves_no_phantom_session(
    bridge_factory: BridgeFactory, agent: Agent, instance_id: str
) -> None:
    service = await bridge_factory(instance_id=instance_id, publish_timeout_s=1.0)
    refused = VoicePeer(ws_url(service), session_id="phantom")
    await refused.connect()
    async with memory_alarm():
        with pytest.raises(RemoteError) as error:
            await refused.initialize()
    assert error.value.code == 503 and "session.started" in error.value.message
    assert await refused.wait_closed() == 1011
    # once the alarm is gone the bridge serves again
    voice = await started_call(service, agent, "after-alarm")
    await voice.hangup()
    await agent.wait_event("session.ended", "after-alarm", timeout=10)
    await voice.close()
    # The refused call's session.started was already out (the alarm blocks the connection at the first
    # publish): it is held, never dropped, and the bridge closed the story right behind it. Both arrive
    # before the later call's end, which went out on the same ordered publisher.
    assert agent.event_types("phantom") == ["session.started", "session.ended"]
    ended = await agent.wait_event("session.ended", "phantom")
    assert ended.body["data"]["reason"] == "error", ended.body
    assert "did not confirm session.started" in ended.body["data"]["detail"]


@pytest.mark.slow
async def test_once_the_broker_blocks_publishing_new_calls_are_refused_at_once(
    bridge_factory: BridgeFactory, agent: Agent, instance_id: str
) -> None:
    service = await bridge_factory(instance_id=instance_id, publish_timeout_s=1.0)
    async with memory_alarm():
        first = VoicePeer(ws_url(service), session_id="blocked-1")
        await first.connect()
        with pytest.raises(RemoteError):
            await first.initialize()  # its session.started meets the alarm: the connection is now blocked
        await until(lambda: service.broker.blocked, 5, "connection.blocked from the broker")
        second = VoicePeer(ws_url(service), session_id="blocked-2")
        await second.connect()
        with pytest.raises(RemoteError) as refused:
            await second.initialize()
        # refused at once on the blocked flag, not by the confirm timeout (whose message differs)
        assert refused.value.code == 503 and "resource alarm" in refused.value.message
    await until(lambda: not service.broker.blocked, 10, "connection.unblocked")
    assert "session.started" not in agent.event_types("blocked-2")


@pytest.mark.slow
async def test_voice_leaving_while_session_started_awaits_its_confirm_leaves_no_phantom(
    bridge_factory: BridgeFactory, agent: Agent, instance_id: str
) -> None:
    service = await bridge_factory(instance_id=instance_id, publish_timeout_s=5.0)
    voice = VoicePeer(ws_url(service), session_id="left-early")
    await voice.connect()
    async with memory_alarm():
        init = asyncio.ensure_future(voice.initialize())
        # session.started meets the alarm (the broker blocks us at that publish); the caller gives up
        await until(lambda: service.broker.blocked, 5, "session.started to be held by the alarm")
        await voice.close()
        with pytest.raises(ConnectionError):  # the socket closed under the pending request
            await init
        await until(lambda: not service.server.calls, 5, "the bridge to end the call during the alarm")
    ended = await agent.wait_event("session.ended", "left-early", timeout=15)
    assert ended.body["data"]["reason"] == "disconnect"
    assert agent.event_types("left-early") == ["session.started", "session.ended"]
