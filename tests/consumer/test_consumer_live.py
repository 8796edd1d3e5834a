"""rtvbp_consumer against the live bridge and the real broker: the promises of docs/consumers.md §0."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import msgpack
import pytest
from rtvbp_consumer import (
    AudioGap,
    Call,
    CommandError,
    Consumer,
    Dtmf,
    Event,
    PlayoutMark,
    SessionEnded,
    SessionUpdated,
)

from bridge.schemas import validate_body
from bridge.service import Service
from bridge.tools.voicepeer import VoicePeer
from tests.conftest import BridgeFactory, ws_url
from tests.resilience.rabbit import close_connection
from tests.resilience.tcpproxy import TcpProxy, broker_proxy
from tests.support.polling import until

FRAME = 320  # 20 ms of L16/8000/1


def speech(frames: int, salt: int = 0) -> bytes:
    """Audio whose every frame differs (its number in each sample): loss, duplicates or reordering show."""
    return b"".join(((salt * 1000 + n) % 65536).to_bytes(2, "little") * (FRAME // 2) for n in range(frames))


@pytest.fixture
async def consumer(amqp_url: str, prefix: str) -> AsyncIterator[Consumer]:
    async with Consumer(amqp_url, prefix, end_grace_s=1.0, reconnect_interval_s=0.3) as c:
        yield c


async def next_call(calls: AsyncIterator[Call], timeout: float = 5.0) -> Call:
    return await asyncio.wait_for(anext(calls), timeout)


async def start_call(service: Service, session: str, **kwargs: Any) -> VoicePeer:
    voice = VoicePeer(ws_url(service), session_id=session, **kwargs)
    await voice.connect()
    await voice.initialize()
    return voice


async def collect(call: Call) -> tuple[bytes, list[Event]]:
    """All of a call's audio and events, read concurrently until both end."""
    audio, events = bytearray(), []

    async def read_audio() -> None:
        async for chunk in call.audio():
            audio.extend(chunk)

    async def read_events() -> None:
        async for event in call.events():
            events.append(event)

    await asyncio.wait_for(asyncio.gather(read_audio(), read_events()), 15)
    return bytes(audio), events


async def test_calls_started_right_after_the_consumer_lose_no_first_chunk_and_end_after_trailing_audio(
    bridge: Service, consumer: Consumer
) -> None:
    calls = consumer.calls()
    sent = {f"first-{i}": speech(12, salt=i) for i in range(3)}  # 240 ms: 2 full chunks and a short one

    async def caller(session: str) -> VoicePeer:
        voice = await start_call(bridge, session)
        await voice.send_audio(sent[session])  # at once, then hang up: the tail races session.ended
        await voice.hangup()
        return voice

    voices = await asyncio.gather(*(caller(s) for s in sent))
    followed = [await next_call(calls) for _ in sent]
    results = await asyncio.gather(*(collect(call) for call in followed))
    for call, (audio, events) in zip(followed, results, strict=True):
        assert call.codec.sample_rate == 8000 and call.codec.channels == 1
        assert call.started["call"]["session_id"] == call.session_id
        assert audio == sent[call.session_id], call  # first chunk included, in order, once
        ended = await call.ended(timeout=1)
        assert isinstance(events[-1], SessionEnded) and events[-1] is ended
        assert ended.reason == "hangup" and ended.counters["bytes_in"] == len(audio)
        assert not [e for e in events if isinstance(e, AudioGap)] and call.missing_bytes == 0
    for voice in voices:
        await voice.close()
    assert consumer.following == 0


async def test_duplicates_are_dropped_across_a_kill_of_the_bridges_broker_connection(
    bridge_factory: BridgeFactory, consumer: Consumer, amqp_url: str, prefix: str, instance_id: str
) -> None:
    service = await bridge_factory(instance_id=instance_id)
    calls = consumer.calls()
    voice = await start_call(service, "dedup-1")
    call = await next_call(calls)
    reading = asyncio.create_task(collect(call))
    # A raw tap on the call's messages, to publish exact copies of what the bridge sent (at-least-once).
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    tap = await channel.declare_queue(exclusive=True)
    await tap.bind(f"{prefix}.audio", "dedup-1.in")
    await tap.bind(f"{prefix}.events", "dedup-1.dtmf")

    sent = speech(75)  # 1.5 s
    talking = asyncio.create_task(voice.stream_audio(sent))
    await voice.dtmf("5")
    await asyncio.sleep(0.5)  # mid-call, by design: the kill must hit a live stream
    assert await close_connection(f"rtvbp-bridge {instance_id} publish") == 1
    await talking
    copies = []
    while (message := await tap.get(no_ack=True, fail=False)) is not None:
        copies.append(message)
    assert len(copies) >= 2
    for message in copies[:2]:  # the dtmf event and the first audio chunk, again
        exchange = await channel.get_exchange(message.exchange or "", ensure=False)
        await exchange.publish(aio_pika.Message(message.body, type=message.type), message.routing_key or "")
    await connection.close()
    await until(lambda: call.stream.duplicates >= 2, 5, "the re-published copies to arrive")
    await voice.hangup()
    audio, events = await reading
    assert audio == sent
    assert [e.digit for e in events if isinstance(e, Dtmf)] == ["5"]
    seqs = [e.seq for e in events if e.seq >= 0]
    assert seqs == sorted(set(seqs))  # strictly increasing: no duplicate event either
    await voice.close()


@pytest.fixture
def instance_id() -> str:
    return f"lib-{uuid.uuid4().hex[:8]}"  # unique: the broker-side kill hits only this test's bridge


async def test_a_lost_consumer_connection_reconnects_keeps_the_call_and_reports_the_gap(
    bridge: Service, amqp_url: str, prefix: str
) -> None:
    async with (
        broker_proxy(amqp_url) as (proxy, proxied_url),
        Consumer(proxied_url, prefix, end_grace_s=1.0, reconnect_interval_s=0.2) as consumer,
    ):
        await _lost_consumer_connection(bridge, consumer, proxy)


async def _lost_consumer_connection(bridge: Service, consumer: Consumer, proxy: TcpProxy) -> None:
    calls = consumer.calls()
    voice = await start_call(bridge, "gap-1")
    call = await next_call(calls)
    short_voice = await start_call(bridge, "gap-short")  # this one ends while the consumer is away
    short_call = await next_call(calls)
    reading = asyncio.create_task(collect(call))
    sent = speech(100)  # 2 s
    talking = asyncio.create_task(voice.stream_audio(sent))
    await until(lambda: call.stream.received_bytes >= 3200, 5, "the first chunks")
    proxy.down()  # the connection drops and reconnecting fails for a while: chunks go nowhere
    proxy.reset()
    await short_voice.hangup()
    await short_voice.close()
    await asyncio.sleep(0.5)  # the length of the outage, not a wait for nothing
    proxy.up()
    # Its session.ended was never delivered, yet the call ends: the consumer checked after reconnecting.
    assert (await short_call.ended(timeout=5)).reason == "unknown"
    await talking
    # After the reconnect the call is still followed and commands work again.
    await until(lambda: call.stream.received_bytes > 6400, 10, "audio after the reconnect")
    result = await call.play(b"\x01\x00" * 800)
    assert result["queued_bytes"] == 1600
    await voice.hangup()
    audio, events = await reading
    gaps = [e for e in events if isinstance(e, AudioGap)]
    assert gaps and all(g.detected_by == "consumer" for g in gaps)
    assert call.missing_bytes > 0 and sum(g.dropped_bytes for g in gaps) == call.missing_bytes
    assert len(audio) + call.missing_bytes == len(sent)
    # What did arrive is the caller's audio, in order, each frame once: a prefix and a suffix of it.
    frames = [audio[i : i + FRAME] for i in range(0, len(audio), FRAME)]
    numbers = [int.from_bytes(f[:2], "little") for f in frames]
    assert numbers == sorted(set(numbers))
    await voice.close()


async def test_mark_resolves_when_played_and_clear_reports_what_was_dropped(
    bridge: Service, consumer: Consumer, amqp_url: str, prefix: str
) -> None:
    calls = consumer.calls()
    voice = await start_call(bridge, "mark-1")
    call = await next_call(calls)
    # A copy of every command the library publishes for this call, to check it against schemas/.
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    sent_commands = await channel.declare_queue(exclusive=True)
    await sent_commands.bind(f"{prefix}.commands", "mark-1")
    started = time.monotonic()
    await call.play(b"\x02\x00" * 2400)  # 300 ms
    mark = await call.mark("after-beep")
    assert isinstance(mark, PlayoutMark) and mark.name == "after-beep" and mark.position_ms == 300
    assert time.monotonic() - started >= 0.25  # played in real time, not merely sent

    await call.play(b"\x03\x00" * 8000 * 3)  # 3 s
    pending = asyncio.create_task(call.mark("never"))
    await until(lambda: call._marks.get("never"), 2, "the mark to be sent")
    cleared = await call.clear()
    assert cleared.marks_dropped == ["never"]
    assert cleared.bridge_bytes > 0 and cleared.bridge_bytes + cleared.voice_bytes < 48000
    assert await asyncio.wait_for(pending, 2) is None
    await call.send_event("audio.speech.started", {"origin": "receiver"})
    await until(lambda: any(e.event == "audio.speech.started" for e in voice.events_received), 2, "the event")
    await call.hangup("done")
    assert (await call.ended(timeout=5)).reason == "hangup"
    await voice.close()
    kinds = []
    while (message := await sent_commands.get(no_ack=True, fail=False)) is not None:
        body = msgpack.unpackb(message.body)
        validate_body(body, kind="command")
        kinds.append(body["type"])
    await connection.close()
    assert kinds == ["audio", "mark", "audio", "mark", "clear", "event", "request"]


async def test_request_errors_and_timeouts_raise_command_error(bridge: Service, consumer: Consumer) -> None:
    calls = consumer.calls()
    voice = await start_call(bridge, "req-1", fail={"recording.stop": (409, "not recording")})
    call = await next_call(calls)
    assert await call.request("session.set", {"data": {"lang": "de"}}) == {}
    assert await call.request("session.get", {"keys": ["lang"]}) == {"lang": "de"}
    with pytest.raises(CommandError) as voice_error:
        await call.request("recording.stop", {"id": "recording-1"})
    assert (voice_error.value.code, voice_error.value.message) == (409, "not recording")
    with pytest.raises(CommandError) as bad:
        await call.request("call.hangup", {})  # reason is required
    assert bad.value.code == 400

    voice.respond = False  # the voice goes quiet: the library's own timeout answers
    started = time.monotonic()
    with pytest.raises(CommandError) as silent:
        await call.request("ping", {"t0": 1}, timeout=0.5)
    assert silent.value.code == 504 and time.monotonic() - started < 1.5
    voice.respond = True

    await call.hangup("done")
    assert (await call.ended(timeout=5)).reason == "hangup"
    # Right after session.ended the bridge may still hold the call's queue for a moment (a command then
    # gets no reply: 504 after the timeout); once it has let go, a command gets 404 at once.
    deadline = time.monotonic() + 5
    while await consumer._owned(call.session_key):
        assert time.monotonic() < deadline, "the bridge kept the call's command queue"
        await asyncio.sleep(0.05)
    started = time.monotonic()
    with pytest.raises(CommandError) as gone:
        await call.play(b"\x00\x00" * 160)
    assert gone.value.code == 404 and time.monotonic() - started < 1.0
    await voice.close()


async def test_two_consumers_in_a_group_share_calls_exactly_once(
    bridge: Service, amqp_url: str, prefix: str
) -> None:
    served: dict[str, list[str]] = {}
    first_events: dict[str, Event] = {}

    async def member(name: str, ready: asyncio.Event) -> None:
        async with Consumer(amqp_url, prefix, group="agents") as consumer:
            ready.set()
            async for call in consumer.calls():
                served.setdefault(call.session_id, []).append(name)
                asyncio.create_task(serve(call))  # noqa: RUF006 -- the test waits on served

    async def serve(call: Call) -> None:
        # Not one of the call's events slips by before its member knows it (all events are bound).
        first_events[call.session_id] = await anext(call.events())
        await call.hangup("served")

    readies = [asyncio.Event(), asyncio.Event()]
    members = [asyncio.create_task(member(f"m{i}", readies[i])) for i in range(2)]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 10)
    voices = await asyncio.gather(*(start_call(bridge, f"group-{i}") for i in range(10)))
    await until(lambda: len(served) == 10, 10, "all ten calls to be served")
    await asyncio.gather(*(voice.wait_closed() for voice in voices))
    assert all(len(names) == 1 for names in served.values()), served
    assert all(isinstance(e, SessionUpdated) and e.seq == 1 for e in first_events.values()), first_events
    assert {names[0] for names in served.values()} == {"m0", "m1"}  # both took a share
    for task in members:
        task.cancel()
    await asyncio.gather(*members, return_exceptions=True)


async def test_odd_messages_never_stop_the_consumer(
    bridge: Service, consumer: Consumer, amqp_url: str, prefix: str
) -> None:
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    for body in (b"\xc1", msgpack.packb([1, 2]), msgpack.packb({"type": "audio"})):
        for exchange, key in ((f"{prefix}.events", "junk.session.started"), (f"{prefix}.audio", "junk.in")):
            target = await channel.get_exchange(exchange, ensure=False)
            await target.publish(aio_pika.Message(body), key)
    await connection.close()
    calls = consumer.calls()
    voice = await start_call(bridge, "after-junk")
    call = await next_call(calls)
    assert call.session_id == "after-junk"
    await voice.hangup()
    await call.ended(timeout=5)
    await voice.close()
