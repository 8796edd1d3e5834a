"""The aiormq internals the bridge relies on (bridge/compat/aiormq.py), checked on a real connection.

Each test names the hook it guards: when an aiormq upgrade removes or changes it, this fails here, loudly,
instead of the bridge quietly losing its resource-alarm check or its fast publish path.
"""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import AsyncIterator

import aio_pika
import aiormq
import msgpack
import pytest
from aio_pika.abc import AbstractRobustConnection

from bridge.compat import aiormq as compat
from bridge.compat.aiormq import DeliveredMessage


@pytest.fixture
async def connection(amqp_url: str) -> AsyncIterator[AbstractRobustConnection]:
    conn = await aio_pika.connect_robust(amqp_url)
    yield conn
    await conn.close()


async def test_blocked_flag_is_the_private_unblocked_event_of_the_connection(
    connection: AbstractRobustConnection,
) -> None:
    underlay = connection.transport.connection  # type: ignore[union-attr]
    flag = getattr(underlay, compat.UNBLOCKED_ATTRIBUTE, None)
    assert isinstance(flag, asyncio.Event), "aiormq no longer keeps the blocked state where compat reads it"
    assert flag.is_set() and compat.connection_blocked(connection) is False
    flag.clear()  # what aiormq does on connection.blocked (a real alarm: tests/resilience)
    try:
        assert compat.connection_blocked(connection) is True
    finally:
        flag.set()


async def test_open_raw_channel_is_a_plain_aiormq_channel_on_the_connection(
    connection: AbstractRobustConnection,
) -> None:
    channel = await compat.open_raw_channel(connection)
    assert isinstance(channel, aiormq.Channel) and not channel.is_closed
    await channel.close()
    await connection.close()
    with pytest.raises(ConnectionError):
        await compat.open_raw_channel(connection)


def test_blocked_falls_back_to_false_without_the_hook() -> None:
    assert compat.connection_blocked(None) is False

    class Bare:
        transport = None

    assert compat.connection_blocked(Bare()) is False  # type: ignore[arg-type]


def test_basic_publish_still_takes_wait() -> None:
    parameters = inspect.signature(aiormq.Channel.basic_publish).parameters
    assert "wait" in parameters and parameters["wait"].default is True
    assert {"exchange", "routing_key", "properties", "mandatory", "timeout"} <= set(parameters)


async def test_publish_nowait_confirms_and_consume_raw_delivers_and_reports_cancel(
    connection: AbstractRobustConnection,
) -> None:
    name = f"compat-{uuid.uuid4().hex[:8]}"
    channel = await connection.channel(publisher_confirms=True)
    queue = await channel.declare_queue(name, exclusive=True, auto_delete=True)
    raw = await compat.raw_channel(channel)
    assert isinstance(raw, aiormq.abc.AbstractChannel)
    assert isinstance(raw.on_consumer_cancel_callbacks, set)

    got: asyncio.Queue[DeliveredMessage] = asyncio.Queue()
    cancelled = asyncio.Event()

    async def on_delivery(message: DeliveredMessage) -> None:
        await got.put(message)

    await compat.consume_raw(raw, queue.name, on_delivery, lambda *_: cancelled.set())
    props = compat.Properties(content_type="application/msgpack", headers={"session_id": "s"})
    confirm = compat.publish_nowait(
        raw, msgpack.packb({"n": 1}), exchange="", routing_key=queue.name, properties=props, timeout=5
    )
    assert isinstance(await asyncio.wait_for(confirm, 5), aiormq.spec.Basic.Ack)
    delivered = await asyncio.wait_for(got.get(), 5)
    assert msgpack.unpackb(delivered.body) == {"n": 1}
    assert delivered.header.properties.headers == {"session_id": "s"}

    await queue.delete(if_unused=False, if_empty=False)  # the broker cancels the consumer
    await asyncio.wait_for(cancelled.wait(), 5)
