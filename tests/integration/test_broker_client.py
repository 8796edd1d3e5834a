"""BrokerClient readiness against the real broker."""

from __future__ import annotations

import asyncio
import logging
import uuid

import aio_pika
import pytest
from yarl import URL

from bridge.broker.addresses import BrokerTLS, connect_first_answering, parse_addresses
from bridge.broker.client import BrokerClient
from bridge.broker.names import Topology
from tests.resilience.rabbit import rabbitmqctl
from tests.support.polling import until
from tests.support.process import free_port


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


async def test_an_address_list_skips_dead_brokers_and_never_logs_the_password(
    amqp_url: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Two closed ports first (nothing listens on a just-freed port), the real broker third.
    real = URL(amqp_url)
    dead = [str(real.with_port(free_port()).with_password("hunter2-dead")) for _ in range(2)]
    caplog.set_level(logging.DEBUG)
    client = BrokerClient(",".join([*dead, amqp_url]), Topology(prefix), confirm_window=8, instance_id="list")
    await client.start()
    try:
        assert await client.wait_connected(timeout=10)
        for conn in (client.publish_conn, client.consume_conn):
            assert conn is not None and conn.url.port == real.port
    finally:
        await client.close()
    assert caplog.text.count(":******@127.0.0.1") >= 4  # each dead address named, masked, per connection
    assert "hunter2-dead" not in caplog.text


async def test_the_heartbeat_reaches_the_broker_on_every_address(amqp_url: str) -> None:
    dead = str(URL(amqp_url).with_port(free_port()))
    name = f"heartbeat-{uuid.uuid4().hex[:8]}"
    conn = await connect_first_answering(
        parse_addresses(f"{dead},{amqp_url}"), BrokerTLS(), name=name, heartbeat=7
    )
    try:

        def negotiated() -> list[str]:
            out = rabbitmqctl("list_connections", "--no-table-headers", "timeout", "client_properties")
            return [line.split("\t")[0] for line in out.splitlines() if name in line]

        await until(negotiated, timeout=5, what="the connection listed by the broker")
        assert negotiated() == ["7"]
    finally:
        await conn.close()
