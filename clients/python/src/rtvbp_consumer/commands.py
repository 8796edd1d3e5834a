"""Commands to the bridge and their replies: correlation ids, a private reply queue, timeouts.

The reply queue has a name of our choosing (not direct reply-to, not a server-named queue) so that the
robust connection can declare it again, under the same name, after a reconnect.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import aio_pika
import msgpack
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage, AbstractQueue

from rtvbp_consumer.errors import CommandError

log = logging.getLogger("rtvbp_consumer")
CONTENT_TYPE = "application/msgpack"


class Commands:
    def __init__(self, channel: AbstractChannel, prefix: str, tag: str) -> None:
        self._channel = channel
        self._prefix = prefix
        self._reply_queue_name = f"{prefix}.replies.{tag}"
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._exchange: AbstractExchange | None = None
        self._reply_queue: AbstractQueue | None = None

    async def start(self) -> None:
        # Declared by the bridge with an alternate exchange: look it up, never re-declare it.
        self._exchange = await self._channel.get_exchange(f"{self._prefix}.commands", ensure=False)
        self._reply_queue = await self._channel.declare_queue(
            self._reply_queue_name, exclusive=True, auto_delete=True
        )
        await self._reply_queue.consume(self._on_reply, no_ack=True)

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        waiter = self._pending.pop(message.correlation_id or "", None)
        if waiter is None or waiter.done():
            return  # late (timed out) or not ours
        try:
            body = msgpack.unpackb(message.body)
            if not isinstance(body, dict):
                raise TypeError("reply is not a map")
        except Exception as exc:  # a reply we cannot read fails its command, never the consumer
            waiter.set_exception(CommandError(502, f"unreadable reply: {exc}"))
            return
        waiter.set_result(body)

    async def send(
        self, key: str, body: dict[str, Any], *, wait: bool = True, timeout: float = 5.0
    ) -> dict[str, Any]:
        """Publish a command for session `key`; with `wait`, return the reply's result or raise."""
        assert self._exchange is not None and self._reply_queue is not None, "Commands.start() first"
        if not wait:  # the hot path (streamed audio): no correlation, no timer unless the broker is away
            message = aio_pika.Message(msgpack.packb(body), content_type=CONTENT_TYPE, type=body["type"])
            await self._publish(message, key, timeout)
            return {}
        correlation_id = uuid.uuid4().hex
        message = aio_pika.Message(
            msgpack.packb(body),
            content_type=CONTENT_TYPE,
            type=body["type"],
            correlation_id=correlation_id,
            reply_to=self._reply_queue_name,
        )
        self._pending[correlation_id] = waiter = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout):
                await self._publish(message, key, timeout)
                reply = await waiter
        except TimeoutError:
            raise CommandError(504, f"no reply to {body['type']} within {timeout:g} s") from None
        finally:
            self._pending.pop(correlation_id, None)
        if reply.get("ok"):
            result = reply.get("result")
            return result if isinstance(result, dict) else {}
        error = reply.get("error") if isinstance(reply.get("error"), dict) else {}
        raise CommandError(int(error.get("code", 500)), str(error.get("message", "failed")))

    async def _publish(self, message: aio_pika.Message, key: str, timeout: float) -> None:
        assert self._exchange is not None
        try:
            await self._exchange.publish(message, routing_key=key)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # connection down, channel closed, ...
            error = exc
        # The robust connection may be re-opening the channel: wait for it, within the timeout, and
        # try once more.
        ready = getattr(self._channel, "ready", None)
        if ready is not None:
            try:
                async with asyncio.timeout(timeout):
                    await ready()
                await self._exchange.publish(message, routing_key=key)
                return
            except asyncio.CancelledError:
                raise
            except TimeoutError:
                raise CommandError(503, f"broker unavailable for {timeout:g} s") from error
            except Exception as exc:
                error = exc
        raise CommandError(503, f"broker did not take the command: {error!r}") from error

    def fail_all(self, error: CommandError) -> None:
        for waiter in self._pending.values():
            if not waiter.done():
                waiter.set_exception(error)
        self._pending.clear()
