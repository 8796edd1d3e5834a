"""A test consumer on the real broker: follows events and audio, sends commands, collects replies."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import msgpack
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection


@dataclass
class Received:
    routing_key: str
    body: dict[str, Any]
    message: AbstractIncomingMessage


@dataclass
class Agent:
    url: str
    prefix: str
    events_pattern: str = "#"
    audio_pattern: str = "#"
    durable_queues: bool = False
    conn: AbstractRobustConnection | None = None
    channel: AbstractChannel | None = None
    events: list[Received] = field(default_factory=list)
    audio: list[Received] = field(default_factory=list)
    replies: dict[str, dict[str, Any]] = field(default_factory=dict)
    reply_ids: list[str] = field(default_factory=list)  # every reply's correlation id, duplicates included
    reply_messages: dict[str, AbstractIncomingMessage] = field(default_factory=dict)  # AMQP properties
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _reply_queue: AbstractQueue | None = None
    _queues: list[AbstractQueue] = field(default_factory=list)

    async def start(self) -> Agent:
        self.conn = await aio_pika.connect_robust(self.url, reconnect_interval=0.5)
        self.channel = await self.conn.channel()
        await self.channel.set_qos(prefetch_count=1000)
        for exchange, pattern, sink in (
            (f"{self.prefix}.events", self.events_pattern, self.events),
            (f"{self.prefix}.audio", self.audio_pattern, self.audio),
        ):
            ex = await self.channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
            if self.durable_queues:
                queue = await self.channel.declare_queue(
                    f"{exchange}.test-{uuid.uuid4().hex[:8]}", durable=True
                )
            else:
                queue = await self.channel.declare_queue(exclusive=True)
            await queue.bind(ex, pattern)
            await queue.consume(self._collector(sink), no_ack=True)
            self._queues.append(queue)
        self._reply_queue = await self.channel.declare_queue(exclusive=True)
        await self._reply_queue.consume(self._on_reply, no_ack=True)
        return self

    async def stop(self) -> None:
        if self.durable_queues:
            for queue in self._queues:
                with contextlib.suppress(Exception):
                    await queue.delete(if_unused=False, if_empty=False)
        if self.conn is not None:
            await self.conn.close()

    def _collector(self, sink: list[Received]) -> Any:
        async def collect(message: AbstractIncomingMessage) -> None:
            body = msgpack.unpackb(message.body, raw=False)
            sink.append(Received(message.routing_key or "", body, message))
            async with self._changed:
                self._changed.notify_all()

        return collect

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        self.replies[message.correlation_id or ""] = msgpack.unpackb(message.body, raw=False)
        self.reply_messages[message.correlation_id or ""] = message
        self.reply_ids.append(message.correlation_id or "")
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, predicate: Any, timeout: float = 5.0) -> Any:
        async def loop() -> Any:
            async with self._changed:
                while True:
                    result = predicate()
                    if result:
                        return result
                    await self._changed.wait()

        return await asyncio.wait_for(loop(), timeout)

    async def wait_event(self, event_type: str, session: str | None = None, timeout: float = 5.0) -> Received:
        def find() -> Received | None:
            for r in self.events:
                if r.body["type"] == event_type and (session is None or r.body["session_id"] == session):
                    return r
            return None

        return await self.wait_for(find, timeout)  # type: ignore[no-any-return]

    def event_types(self, session: str) -> list[str]:
        return [r.body["type"] for r in self.events if r.body["session_id"] == session]

    async def command(
        self,
        session_key: str,
        body: dict[str, Any],
        reply: bool = True,
        timeout: float = 10.0,
        correlation_id: str | None = None,
    ) -> dict[str, Any] | None:
        assert self.channel is not None and self._reply_queue is not None
        cid = correlation_id or uuid.uuid4().hex
        exchange = await self.channel.get_exchange(f"{self.prefix}.commands", ensure=False)
        await exchange.publish(
            aio_pika.Message(
                msgpack.packb(body, use_bin_type=True),
                content_type="application/msgpack",
                correlation_id=cid,
                reply_to=self._reply_queue.name if reply else None,
            ),
            routing_key=session_key,
        )
        if not reply:
            return None
        return await self.wait_for(lambda: self.replies.get(cid), timeout)  # type: ignore[no-any-return]


async def delete_topology(url: str, prefix: str) -> None:
    """Remove what a test run declared (exchanges and the unroutable queues) from the shared broker."""
    conn = await aio_pika.connect(url)
    try:
        for name in ("events", "audio", "commands", "unroutable"):
            channel = await conn.channel()
            with contextlib.suppress(Exception):
                await channel.exchange_delete(f"{prefix}.{name}")
            with contextlib.suppress(Exception):
                await channel.close()
        for queue in (f"{prefix}.unroutable", f"{prefix}.unroutable.replies"):
            channel = await conn.channel()
            with contextlib.suppress(Exception):
                await channel.queue_delete(queue)
    finally:
        await conn.close()
