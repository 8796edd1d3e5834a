"""Reading the bridge's replay stream `<prefix>.replay` (a RabbitMQ stream queue, BRIDGE_REPLAY=true).

The stream holds every event and audio chunk of every call, in the order they reached the broker, so
it can give a call's beginning that a consumer did not see live. Read with plain AMQP 0-9-1: a consumer
with a prefetch, manual acks and `x-stream-offset` set to a timestamp (resolved per stored chunk of
messages, to the second: seek a little early and filter by session key; `seq` de-duplication in the
call's CallStream makes any overlap with the live messages harmless).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgpack
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from aiormq.exceptions import ChannelNotFoundEntity

from rtvbp_consumer.events import parse_event

if TYPE_CHECKING:
    from rtvbp_consumer.call import Call

SEEK_MARGIN_MS = 2000  # timestamps resolve per stored chunk (seconds): start early, filter after
PREFETCH = 500  # a stream consumer must have one
CATCH_UP_TIMEOUT_S = 30.0  # a replay that never meets the live messages gives up: gaps are reported


def stream_name(prefix: str) -> str:
    return f"{prefix}.replay"


def seek_to(epoch_ms: int) -> datetime:
    return datetime.fromtimestamp(max(0, epoch_ms - SEEK_MARGIN_MS) / 1000, tz=UTC)


async def replay_stream_exists(connection: AbstractRobustConnection, prefix: str) -> bool:
    """Does the deployment keep a replay stream? (A passive declare: nothing is created.)"""
    assert connection.transport is not None
    # A bare channel: a failed passive declare closes it, and a robust one would re-open itself.
    channel = await connection.transport.connection.channel()
    try:
        ok = await channel.queue_declare(stream_name(prefix), passive=True)
        return ok is not None
    except ChannelNotFoundEntity:
        return False
    finally:
        with contextlib.suppress(Exception):
            await channel.close()


async def read_call_beginning(connection: AbstractRobustConnection, prefix: str, call: Call) -> None:
    """Feed `call` its messages from the stream, from where its delivered ones stop, until the replay
    has met the live messages held back meanwhile (`call.replay_done`)."""
    prefix_of_call = f"{call.session_key}."

    async def on_message(message: AbstractIncomingMessage) -> None:
        key = message.routing_key or ""
        if key.startswith(prefix_of_call) and not call.replay_done.is_set():
            with contextlib.suppress(Exception):  # one odd message must not end the replay
                feed_replayed(call, key[len(prefix_of_call) :], msgpack.unpackb(message.body))
        await message.ack()

    channel = await connection.channel()
    try:
        await channel.set_qos(prefetch_count=PREFETCH)
        queue = await channel.get_queue(stream_name(prefix), ensure=False)
        seek: dict[str, Any] = {"x-stream-offset": seek_to(call.replay_from_ms)}
        await queue.consume(on_message, arguments=seek)
        await asyncio.wait_for(call.replay_done.wait(), CATCH_UP_TIMEOUT_S)
    finally:
        with contextlib.suppress(Exception):
            await channel.close()


def feed_replayed(call: Call, rest: str, body: dict[str, Any]) -> None:
    if body["type"] == "audio":
        if rest == "in":  # caller audio (the stream also keeps what is played to the caller)
            call.replayed_chunk(int(body["seq"]), int(body["ts"]), body["audio"])
    else:
        call.replayed_event(parse_event(body))


class LiveCallsScan:
    """Find the calls in progress: `session.started` without `session.ended` in the last `lookback_s`
    of the stream, read up to where it meets what the consumer's live queue (bound before) delivers."""

    def __init__(self, connection: AbstractRobustConnection, prefix: str, lookback_s: float) -> None:
        self.connection, self.prefix, self.lookback_s = connection, prefix, lookback_s
        self.done = False
        self._live: set[tuple[str, int]] = set()  # (routing key, seq) delivered live while scanning
        self._met_live = asyncio.Event()

    def seen_live(self, routing_key: str, body: dict[str, Any]) -> None:
        seq = body.get("seq")
        if isinstance(seq, int):
            self._live.add((routing_key, seq))

    async def run(self) -> dict[str, dict[str, Any]]:
        """Session key -> its session.started body, for the calls that had not ended when the scan met
        the live messages. With no traffic at all it waits: then no call is in progress either."""
        started: dict[str, dict[str, Any]] = {}

        async def on_message(message: AbstractIncomingMessage) -> None:
            key = message.routing_key or ""
            if not self._met_live.is_set():
                with contextlib.suppress(Exception):
                    body = msgpack.unpackb(message.body)
                    if (key, body.get("seq")) in self._live:
                        self._met_live.set()
                    elif body.get("type") == "session.started":
                        started[key.partition(".")[0]] = body
                    elif body.get("type") == "session.ended":
                        started.pop(key.partition(".")[0], None)
            await message.ack()

        channel = await self.connection.channel()
        try:
            await channel.set_qos(prefetch_count=PREFETCH)
            queue = await channel.get_queue(stream_name(self.prefix), ensure=False)
            since_ms = int((datetime.now(tz=UTC).timestamp() - self.lookback_s) * 1000)
            await queue.consume(on_message, arguments={"x-stream-offset": seek_to(since_ms)})
            await self._met_live.wait()
        finally:
            with contextlib.suppress(Exception):
                await channel.close()
        return started
