"""Two bridge replicas on different nodes of a real three-node cluster; the node under one of them stops.

Replica A starts with a three-address list whose first address is dead, so it serves calls from node 1;
replica B is on node 3; the consumer is on node 2. Node 1 is stopped mid-call: A must move to another node
with its call still up, its caller audio must stay in order with any loss reported by `audio.gap`,
commands must reach it again, and the ownership lock must keep refusing a duplicate session everywhere.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from bridge.schemas import validate_body
from bridge.service import Service
from bridge.tools.voicepeer import RemoteError, VoicePeer
from tests.conftest import ws_url
from tests.resilience.conftest import Bystander, audio_of
from tests.support.amqp import Agent
from tests.support.polling import until
from tests.support.process import free_port

from .rabbit_nodes import BRIDGE_PASSWORD, BRIDGE_USER, Node

CHUNK_BYTES = 1600  # 100 ms of L16/8000/1 (BRIDGE_AUDIO_CHUNK_MS default)


def node_of(service: Service, nodes: list[Node]) -> set[int]:
    """The AMQP ports of the nodes A's two connections currently point at."""
    conns = (service.broker.publish_conn, service.broker.consume_conn)
    ports = {n.amqp_port for n in nodes}
    return {c.url.port for c in conns if c is not None and c.url.port in ports}


async def test_a_replica_moves_to_another_node_when_its_node_stops(
    nodes: list[Node], replicas: Any, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    node1, node2, node3 = nodes
    creds = (BRIDGE_USER, BRIDGE_PASSWORD)
    dead = f"amqp://{BRIDGE_USER}:{BRIDGE_PASSWORD}@127.0.0.1:{free_port()}/"
    replica_a: Service = await replicas("replica-a", f"{dead},{node1.url(*creds)},{node2.url(*creds)}")
    replica_b: Service = await replicas("replica-b", f"{node3.url(*creds)},{node2.url(*creds)}")
    assert node_of(replica_a, nodes) == {node1.amqp_port}
    assert node_of(replica_b, nodes) == {node3.amqp_port}

    agent = await Agent(node2.url(), prefix).start()
    try:
        call_a = await Bystander(replica_a, agent, session="call-a").start()
        call_b = await Bystander(replica_b, agent, session="call-b").start()
        await call_a.command_round_trip()
        await call_b.command_round_trip()

        reconnects = replica_a.broker.reconnects
        stopping = time.monotonic()
        await asyncio.to_thread(node1.stop)
        stopped = time.monotonic()
        await until(
            lambda: replica_a.broker.reconnects >= reconnects + 2 and replica_a.broker.ready(),
            timeout=30,
            what="replica A's publishing and consuming connections restored",
        )
        assert node_of(replica_a, nodes) == {node2.amqp_port}  # the next address after node 1
        assert call_a.voice is not None and call_a.voice.ws.state.name == "OPEN"

        # Commands reach A's call again once its session queue is re-declared on node 2.
        await _eventually_answered(call_a)
        answered = time.monotonic()
        # The node closes its connections early in `rabbitmqctl stop`; the replica is back within seconds.
        recovery_s = answered - stopping
        print(f"\nnode stop: {stopped - stopping:.1f} s; commands answered {recovery_s:.1f} s from its start")
        assert recovery_s < 15
        await asyncio.sleep(0.3)  # let a few more chunks of live audio through the new node

        # The ownership lock still holds on both replicas for both calls.
        for session in ("call-a", "call-b"):
            for service in (replica_a, replica_b):
                again = VoicePeer(ws_url(service), session_id=session)
                await again.connect()
                with pytest.raises(RemoteError) as refused:
                    await again.initialize()
                assert refused.value.code == 409, (session, service.settings.instance_id)
                await again.wait_closed()

        ended_a = await call_a.finish(lossless=False)
        ended_b = await call_b.finish(lossless=True)  # node 3 never went away: B noticed nothing
        assert ended_a["reason"] == "hangup" and ended_b["reason"] == "hangup"
        assert_in_order_with_gaps_reported(agent, "call-a", bytes(call_a.sent))
        for received in agent.events:
            validate_body(received.body, kind="event")
        for received in agent.audio:
            validate_body(received.body, kind="audio")
        assert "lost or not answering; trying amqp://bridge:******@" in caplog.text
        assert BRIDGE_PASSWORD not in caplog.text  # the dead address, the failover, aio-pika's own lines
    finally:
        await agent.stop()  # node 1 stays down: the TLS tests use node 3, and restarting costs ~10 s


async def _eventually_answered(call: Bystander) -> None:
    for _ in range(20):
        try:
            await call.command_round_trip(timeout=1.0)
            return
        except TimeoutError:
            continue  # the command was published before the session queue was back: unroutable
    raise AssertionError("commands never reached the call after the failover")


def assert_in_order_with_gaps_reported(agent: Agent, session: str, sent: bytes) -> None:
    """Chunks arrive in seq order (a resend may repeat one), each holds exactly the caller bytes for its
    position, and every missing seq lies in a range an `audio.gap` event reported."""
    seqs = [r.body["seq"] for r in audio_of(agent, session)]
    distinct = list(dict.fromkeys(seqs))
    assert distinct == sorted(distinct), f"caller audio out of order: {seqs}"
    for r in audio_of(agent, session):
        start = r.body["seq"] * CHUNK_BYTES
        assert r.body["audio"] == sent[start : start + len(r.body["audio"])], r.body["seq"]
    reported: set[int] = set()
    for gap in (r.body["data"] for r in agent.events if r.body["session_id"] == session):
        if "first_seq" in gap and "last_seq" in gap:
            reported.update(range(gap["first_seq"], gap["last_seq"] + 1))
    missing = set(range(max(distinct) + 1)) - set(distinct)
    assert missing <= reported, f"chunks lost without an audio.gap: {sorted(missing - reported)}"
