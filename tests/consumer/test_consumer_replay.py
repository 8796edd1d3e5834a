"""rtvbp_consumer with the bridge's replay stream (BRIDGE_REPLAY=true): late consumers get every byte.

A consumer started 2 s into a call (`calls(include_live=True)`) and a group member that takes a call
late both read `call.audio()` from seq 0, byte 0, in order, each byte once, and a consumer cut off from
the broker mid-call gets the hole filled; without the stream the library says so (`replay=True`) or
goes on live only.
"""

from __future__ import annotations

import asyncio

import pytest
from rtvbp_consumer import AudioGap, Consumer, EventGap, ReplayUnavailable, SessionEnded

from tests.conftest import BridgeFactory
from tests.consumer.test_consumer_live import FRAME, collect, next_call, speech, start_call
from tests.resilience.tcpproxy import broker_proxy
from tests.support.polling import until


async def test_a_consumer_started_mid_call_reads_its_audio_from_byte_0(
    bridge_factory: BridgeFactory, amqp_url: str, prefix: str
) -> None:
    service = await bridge_factory(replay=True)
    over = await start_call(service, "over-1")  # a call that has ended before the consumer starts
    await over.send_audio(speech(5))
    await over.hangup()
    await over.close()
    voice = await start_call(service, "late-1")
    sent = speech(150, salt=7)  # 3 s in real time, every frame different
    talking = asyncio.create_task(voice.stream_audio(sent))
    await asyncio.sleep(2.0)  # by design: the consumer starts 2 s into the call
    async with Consumer(amqp_url, prefix, end_grace_s=1.0) as consumer:
        assert consumer.replay_available
        call = await next_call(consumer.calls(include_live=True))
        assert call.session_id == "late-1" and call.codec.sample_rate == 8000
        scan = consumer._scan
        await until(lambda: scan is not None and scan.done, 5, "the look for calls in progress to end")
        assert consumer._new_calls.empty()  # the call that had ended was not handed out
        reading = asyncio.create_task(collect(call))
        await talking
        await voice.hangup()
        audio, events = await reading
    assert len(sent) == 150 * FRAME
    assert audio == sent  # from byte 0, in order, each byte once
    assert not [e for e in events if isinstance(e, (AudioGap, EventGap))] and call.missing_bytes == 0
    assert isinstance(events[-1], SessionEnded) and events[-1].counters["bytes_in"] == len(sent)
    assert call.stream.duplicates > 0  # the replay and the live queue overlapped: seq de-duplicated it
    await voice.close()


async def test_a_group_member_taking_a_call_late_reads_its_audio_from_byte_0(
    bridge_factory: BridgeFactory, amqp_url: str, prefix: str
) -> None:
    service = await bridge_factory(replay=True)
    async with Consumer(amqp_url, prefix, group="agents"):
        pass  # the group's queue now exists, and outlives its members for a while
    voice = await start_call(service, "late-2")  # its session.started waits in the group's queue
    sent = speech(100, salt=8)
    talking = asyncio.create_task(voice.stream_audio(sent))
    await asyncio.sleep(1.0)  # by design: the member arrives 1 s into the call
    async with Consumer(amqp_url, prefix, group="agents", end_grace_s=1.0) as member:
        call = await next_call(member.calls())
        reading = asyncio.create_task(collect(call))
        await talking
        await voice.hangup()
        audio, events = await reading
    assert audio == sent
    assert not [e for e in events if isinstance(e, (AudioGap, EventGap))] and call.missing_bytes == 0
    await voice.close()


async def test_without_the_stream_replay_is_refused_when_required_and_skipped_otherwise(
    bridge_factory: BridgeFactory, amqp_url: str, prefix: str
) -> None:
    service = await bridge_factory()  # no BRIDGE_REPLAY
    with pytest.raises(ReplayUnavailable):
        await Consumer(amqp_url, prefix, replay=True).start()
    async with Consumer(amqp_url, prefix, end_grace_s=1.0) as consumer:
        assert not consumer.replay_available
        calls = consumer.calls(include_live=True)  # no calls in progress to find: new ones as today
        voice = await start_call(service, "live-1")
        sent = speech(10, salt=9)
        await voice.send_audio(sent)
        await voice.hangup()
        audio, _ = await collect(await next_call(calls))
    assert audio == sent
    await voice.close()


async def test_audio_missed_while_the_consumer_was_disconnected_is_read_from_the_stream(
    bridge_factory: BridgeFactory, amqp_url: str, prefix: str
) -> None:
    service = await bridge_factory(replay=True)
    async with (
        broker_proxy(amqp_url) as (proxy, proxied_url),
        Consumer(proxied_url, prefix, end_grace_s=1.0, reconnect_interval_s=0.2) as consumer,
    ):
        calls = consumer.calls()
        voice = await start_call(service, "hole-1")
        call = await next_call(calls)
        short_voice = await start_call(service, "hole-short")  # this one ends while the consumer is away
        short_call = await next_call(calls)
        short_sent = speech(10, salt=11)
        await short_voice.send_audio(short_sent)
        await until(lambda: short_call.stream.received_bytes == len(short_sent), 5, "the short call's audio")
        reading = asyncio.create_task(collect(call))
        sent = speech(100, salt=10)  # 2 s
        talking = asyncio.create_task(voice.stream_audio(sent))
        await until(lambda: call.stream.received_bytes >= 3200, 5, "the first chunks")
        proxy.down()  # the connection drops and reconnecting fails for a while: chunks go nowhere live
        proxy.reset()
        await short_voice.hangup()
        await short_voice.close()
        await asyncio.sleep(0.5)  # the length of the outage, not a wait for nothing
        proxy.up()
        # Its session.ended went by while the consumer was away: the stream has it, with its counters.
        ended = await short_call.ended(timeout=10)
        assert ended.reason == "hangup" and ended.counters["bytes_in"] == len(short_sent)
        await talking
        await voice.hangup()
        audio, events = await reading
    assert audio == sent  # the hole was filled from the stream: no gap, nothing twice
    assert not [e for e in events if isinstance(e, AudioGap)] and call.missing_bytes == 0
    await voice.close()
