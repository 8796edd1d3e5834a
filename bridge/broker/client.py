"""The process's broker connections: one for publishing, one for consuming commands.

Separate connections because RabbitMQ blocks *publishing* connections under a memory or disk alarm; a
blocked publisher must not stall barge-in or hangup commands. Both are robust (aio-pika reconnects and
restores channels, queues, bindings and consumers); the service starts even when the broker is down and
reports not-ready until it is reachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractRobustChannel,
    AbstractRobustConnection,
    ExchangeType,
)
from aiormq.exceptions import ChannelNotFoundEntity

from bridge.broker import messages
from bridge.broker.addresses import BrokerTLS, connect_first_answering, parse_addresses
from bridge.broker.ledger import CallLedger
from bridge.broker.names import Topology
from bridge.broker.publisher import ConfirmingPublisher, Outgoing
from bridge.broker.reaper import LostCallReaper
from bridge.broker.replay import ReplaySettings, declare_replay_stream
from bridge.compat.aiormq import connection_blocked
from bridge.telemetry import Telemetry

log = logging.getLogger("bridge.broker")

CONNECT_RETRY_S = 1.0
UNROUTABLE_QUEUE_ARGS: dict[str, Any] = {
    "x-max-length": 10_000,
    "x-overflow": "drop-head",
    "x-message-ttl": 3_600_000,
}
# The copy every replica competes for, to answer 404: a reply older than a few seconds helps nobody, and
# the queue goes away an hour after the last bridge of this prefix does.
UNROUTABLE_REPLIES_ARGS: dict[str, Any] = {
    "x-queue-type": "quorum",
    "x-max-length": 1_000,
    "x-overflow": "drop-head",
    "x-message-ttl": 10_000,
    "x-expires": 3_600_000,
}


class BrokerClient:
    def __init__(
        self,
        url: str,
        topology: Topology,
        confirm_window: int,
        instance_id: str,
        heartbeat_s: int | None = None,
        replay: ReplaySettings | None = None,
        tls: BrokerTLS | None = None,
    ) -> None:
        self.addresses = parse_addresses(url)  # one URL, or the comma-separated nodes of a cluster
        self.tls = tls or BrokerTLS()
        self.topology = topology
        self.instance_id = instance_id
        self.heartbeat_s = heartbeat_s
        self.replay = replay
        self.publish_conn: AbstractRobustConnection | None = None
        self.consume_conn: AbstractRobustConnection | None = None
        self.control = ConfirmingPublisher("control", self._publish_channel, confirm_window)
        self.audio = ConfirmingPublisher("audio", self._publish_channel, confirm_window)
        self.reconnects = 0
        # Calls of a replica lost without draining are ended by a surviving one (bridge.broker.lost_calls).
        presence = topology.presence_queue(uuid.uuid4().hex)
        self.ledger = CallLedger(self.control, topology.ledger, presence, instance_id)
        self.reaper = LostCallReaper(topology, presence, self.control)
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Begin connecting in the background; does not wait for the broker."""
        self._task = asyncio.create_task(self._connect_forever(), name="broker-connect")
        self.control.start()
        self.audio.start()

    async def wait_connected(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), timeout)
        return self.ready()

    @property
    def blocked(self) -> bool:
        """True while RabbitMQ blocks our publishing connection (memory or disk alarm)."""
        return connection_blocked(self.publish_conn)

    def ready(self) -> bool:
        # Connected is not enough: until the topology is declared, a call's queue cannot bind to it.
        return self._connected.is_set() and all(
            c is not None and not c.is_closed for c in (self.publish_conn, self.consume_conn)
        )

    async def close(self) -> None:
        # Flush what is held (session.ended above all), unless there is no broker to flush it to.
        flush_s = 5.0 if self.ready() else 0.0
        await self.control.stop(flush_s)
        await self.audio.stop(flush_s)
        if self._task is not None:
            self._task.cancel()
            # Let a connection attempt in flight close what it opened, before the loop goes away.
            await asyncio.gather(self._task, return_exceptions=True)
        await self.reaper.stop()
        for conn in (self.consume_conn, self.publish_conn):
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()

    async def session_channel(self) -> AbstractRobustChannel:
        """A channel on the consuming connection for one session's command queue."""
        if self.consume_conn is None or self.consume_conn.is_closed:
            raise ConnectionError("broker unavailable")
        return await self.consume_conn.channel()

    # ---- internals ------------------------------------------------------------------------------------

    async def _connect_forever(self) -> None:
        while True:
            try:
                self.publish_conn = await self._connect("publish")
                self.consume_conn = await self._connect("consume")
                await self._declare_topology()
                await self._answer_unroutable()
                if self.replay is not None:
                    await declare_replay_stream(self.publish_conn, self.topology, self.replay)
                await self.reaper.start(self.consume_conn)
                self._connected.set()
                log.info("connected to the broker")
                return
            except Exception as exc:
                log.warning("broker not reachable (%s); retrying", type(exc).__name__)
                for conn in (self.publish_conn, self.consume_conn):
                    if conn is not None:
                        with contextlib.suppress(Exception):
                            await conn.close()
                self.publish_conn = self.consume_conn = None
                await asyncio.sleep(CONNECT_RETRY_S)

    async def _connect(self, role: str) -> AbstractRobustConnection:
        conn = await connect_first_answering(
            self.addresses,
            self.tls,
            name=f"rtvbp-bridge {self.instance_id} {role}",
            reconnect_interval=1.0,
            heartbeat=self.heartbeat_s,  # how fast a dead peer is noticed; None: the URL's or the broker's
        )
        conn.reconnect_callbacks.add(self._on_reconnect)
        return conn

    def _on_reconnect(self, *_: object) -> None:
        self.reconnects += 1
        log.info("broker connection restored")

    async def _publish_channel(self) -> AbstractChannel:
        await self._connected.wait()
        assert self.publish_conn is not None
        return await self.publish_conn.channel(publisher_confirms=True)

    async def _declare_topology(self) -> None:
        assert self.publish_conn is not None
        t = self.topology
        channel = await self.publish_conn.channel()
        try:
            await channel.declare_exchange(t.events, ExchangeType.TOPIC, durable=True)
            await channel.declare_exchange(t.audio, ExchangeType.TOPIC, durable=True)
            unroutable = await channel.declare_exchange(t.unroutable, ExchangeType.FANOUT, durable=True)
            await channel.declare_exchange(
                t.commands, ExchangeType.DIRECT, durable=True, arguments={"alternate-exchange": t.unroutable}
            )
            replies = await channel.declare_queue(
                t.unroutable_replies, durable=True, arguments=UNROUTABLE_REPLIES_ARGS
            )
            await replies.bind(unroutable)
        finally:
            await channel.close()
        await self._declare_inspection_queue()

    async def _declare_inspection_queue(self) -> None:
        """Commands nobody owns land here for inspection instead of vanishing (bounded, expiring).

        A classic queue lives on one cluster node; while that node is down the broker refuses to declare it
        (NOT_FOUND). It is only an inspection aid, so a replica starts without it rather than not at all.
        """
        assert self.publish_conn is not None
        t = self.topology
        channel = await self.publish_conn.channel()
        try:
            queue = await channel.declare_queue(t.unroutable, durable=True, arguments=UNROUTABLE_QUEUE_ARGS)
            await queue.bind(t.unroutable)
        except ChannelNotFoundEntity as exc:
            log.warning("inspection queue %s unavailable (%s); continuing without it", t.unroutable, exc)
        finally:
            with contextlib.suppress(Exception):
                await channel.close()

    async def _answer_unroutable(self) -> None:
        """Commands for a session no replica owns: whoever asked for a reply gets 404 now, not a timeout.

        A robust channel on the consuming connection, so the consumer comes back after a reconnect. The queue
        is declared (not just looked up) here, so that restore re-creates it if it was deleted meanwhile
        instead of failing, which would take the whole consuming connection's restore down with it.
        """
        assert self.consume_conn is not None
        t = self.topology
        channel = await self.consume_conn.channel()
        queue = await channel.declare_queue(
            t.unroutable_replies, durable=True, arguments=UNROUTABLE_REPLIES_ARGS
        )
        await queue.bind(t.unroutable)
        await queue.consume(self._on_unroutable, no_ack=True)

    async def _on_unroutable(self, message: AbstractIncomingMessage) -> None:
        if not message.reply_to:
            return  # nobody to tell; the copy in the inspection queue stays
        key = message.routing_key or "-"
        body = messages.reply_error(
            key, 404, f"no bridge has session {key!r}: the call has ended or never started"
        )
        headers = {"session_id": key, **Telemetry.reply_headers(message.headers)}
        props = messages.properties(body_type="reply", headers=headers, correlation_id=message.correlation_id)
        self.control.submit(Outgoing("", message.reply_to, messages.pack(body), props))
