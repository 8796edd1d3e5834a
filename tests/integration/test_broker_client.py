"""BrokerClient readiness against the real broker."""

from __future__ import annotations

import aio_pika

from bridge.broker.client import BrokerClient
from bridge.broker.names import Topology


async def test_open_connections_are_not_ready_until_the_topology_is_declared(
    amqp_url: str, prefix: str
) -> None:
    # A call admitted in between would bind its command queue to an exchange that does not exist yet.
    client = BrokerClient(amqp_url, Topology(prefix), confirm_window=8, instance_id="ready-test")
    conn = await aio_pika.connect_robust(amqp_url)
    try:
        client.publish_conn = client.consume_conn = conn
        assert not client.ready()
        await client._declare_topology()
        await client._answer_unroutable()
        client._connected.set()  # what _connect_forever does once both are done
        assert client.ready()
    finally:
        await conn.close()
    assert not client.ready()
