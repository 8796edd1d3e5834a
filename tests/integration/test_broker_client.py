"""BrokerClient readiness against the real broker."""

from __future__ import annotations

import asyncio

import aio_pika

from bridge.broker.client import BrokerClient
from bridge.broker.names import Topology


async def _until_ready(client: BrokerClient) -> None:
    while not client.ready():
        await asyncio.sleep(0)  # every loop turn: the first moment it says ready is the one checked


async def test_ready_means_the_topology_is_declared_and_unroutable_commands_are_answered(
    amqp_url: str, prefix: str
) -> None:
    # A call admitted earlier would bind its command queue to an exchange that does not exist yet.
    topology = Topology(prefix)
    client = BrokerClient(amqp_url, topology, confirm_window=8, instance_id="ready-test")
    observer = await aio_pika.connect(amqp_url)
    try:
        channel = await observer.channel()
        assert not client.ready()
        await client.start()
        await asyncio.wait_for(_until_ready(client), 10)
        # Checked at once from another connection: what the last set-up steps create is already there.
        replies = await channel.declare_queue(topology.unroutable_replies, passive=True)
        assert replies.declaration_result.consumer_count == 1
        for exchange in (topology.events, topology.audio, topology.commands, topology.unroutable):
            await channel.get_exchange(exchange, ensure=True)  # passive: fails if it does not exist
    finally:
        await client.close()
        await observer.close()
    assert not client.ready()
