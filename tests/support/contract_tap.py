"""Every message the bridge publishes during a test, checked against schemas/ as it arrives.

The tap binds its own queues to the test prefix's events and audio exchanges with `#` and validates
each message published by the bridge (`app_id=rtvbp-bridge`): the body against its schema, the AMQP
`type` against the body's, the headers against BridgeHeaders (session_id, traceparent). Replies are
checked where they arrive, by the test Agent (tests/support/amqp.py), against the result schema of
the command they answer. Any mismatch fails the test that caused it.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import aio_pika
import msgpack
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection
from jsonschema import ValidationError

from bridge.schemas import BodyKind, validate_body, validate_headers

BRIDGE_APP_ID = "rtvbp-bridge"


def check_published(kind: BodyKind, message: AbstractIncomingMessage) -> str | None:
    """What is wrong with a message the bridge published, or None."""
    try:
        body = msgpack.unpackb(message.body, raw=False)
    except Exception as exc:  # any decoding failure is a contract violation
        return f"{kind} body is not msgpack: {exc!r}"
    if not isinstance(body, dict):
        return f"{kind} body is not a map: {body!r:.200}"
    where = f"{kind} {body.get('type')!r} on {message.routing_key!r}"
    try:
        validate_body(body, kind=kind)
        validate_headers(message.headers)
    except ValidationError as exc:
        return f"{where}: {exc.message} at {'/'.join(map(str, exc.absolute_path)) or '(root)'}"
    if message.type != body["type"] or message.content_type != "application/msgpack":
        return f"{where}: AMQP type {message.type!r}, content_type {message.content_type!r}"
    return None


@dataclass
class ContractTap:
    url: str
    prefix: str
    violations: list[str] = field(default_factory=list)
    checked: int = 0
    _conn: AbstractRobustConnection | None = None
    _queues: list[AbstractQueue] = field(default_factory=list)

    async def start(self) -> ContractTap:
        self._conn = await aio_pika.connect_robust(self.url, reconnect_interval=0.5)
        channel = await self._conn.channel()
        await channel.set_qos(prefetch_count=1000)
        for name, kind in (("events", "event"), ("audio", "audio")):
            # Declared as the bridge declares them, so either may come first.
            exchange = await channel.declare_exchange(
                f"{self.prefix}.{name}", aio_pika.ExchangeType.TOPIC, durable=True
            )
            queue = await channel.declare_queue(exclusive=True)
            await queue.bind(exchange, "#")
            await queue.consume(self._checker(kind), no_ack=True)
            self._queues.append(queue)
        return self

    def _checker(self, kind: BodyKind):  # type: ignore[no-untyped-def]
        async def check(message: AbstractIncomingMessage) -> None:
            if message.app_id != BRIDGE_APP_ID:
                return  # what tests publish themselves (junk included) is not the bridge's
            self.checked += 1
            problem = check_published(kind, message)
            if problem is not None:
                self.violations.append(problem)

        return check

    async def stop(self) -> list[str]:
        """Stop after what is already queued for the tap has been checked; return the violations."""
        with contextlib.suppress(Exception):
            for queue in self._queues:
                for _ in range(20):
                    declared = await queue.channel.declare_queue(queue.name, passive=True)
                    if not declared.declaration_result.message_count:
                        break
                    await asyncio.sleep(0.025)
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
        return self.violations
