"""aiormq, below aio-pika: the parts the bridge uses directly (aiormq is pinned in pyproject.toml).

The per-message paths (audio chunks out, commands in) skip aio-pika's Message objects and tasks and talk
to the aiormq channel under an aio-pika channel; the publisher needs a publish that does not wait for
its frame to be written, the command consumer a hook for a broker-side cancel, and the broker client the
connection's blocked state (RabbitMQ's resource alarm), which aiormq tracks but keeps private.
tests/unit/test_compat_aiormq.py fails when an upgrade removes or changes any of these.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection
from aiormq import spec
from aiormq.abc import DeliveredMessage

__all__ = [
    "ChannelLockedResource",
    "DeliveredMessage",
    "Properties",
    "RawChannel",
    "connection_blocked",
    "consume_raw",
    "open_raw_channel",
    "publish_nowait",
    "raw_channel",
]

Properties = spec.Basic.Properties
RawChannel = aiormq.abc.AbstractChannel
ChannelLockedResource = aiormq.exceptions.ChannelLockedResource
# The name-mangled attribute of aiormq.Connection: set while the broker lets us publish.
UNBLOCKED_ATTRIBUTE = "_Connection__connection_unblocked"


def connection_blocked(connection: AbstractConnection | None) -> bool:
    """True while RabbitMQ blocks this connection's publishes (memory or disk alarm).

    aiormq handles `connection.blocked`/`unblocked` only by pausing writes; its flag is private. On a
    version without it this reports False and callers fall back to publish timeouts.
    """
    transport = getattr(connection, "transport", None)
    underlay = getattr(transport, "connection", None)
    unblocked = getattr(underlay, UNBLOCKED_ATTRIBUTE, None)
    return isinstance(unblocked, asyncio.Event) and not unblocked.is_set()


async def open_raw_channel(connection: AbstractConnection) -> RawChannel:
    """A new plain aiormq channel on an aio-pika connection: one that aio-pika will never try to restore."""
    underlay = getattr(connection.transport, "connection", None)
    if underlay is None:
        raise ConnectionError("broker connection not open")
    channel: RawChannel = await underlay.channel()
    return channel


async def raw_channel(channel: AbstractChannel) -> RawChannel:
    """The aiormq channel under an aio-pika channel (the one open now; a robust channel replaces it)."""
    return await channel.get_underlay_channel()


def publish_nowait(
    channel: RawChannel,
    body: bytes,
    *,
    exchange: str,
    routing_key: str,
    properties: Properties,
    timeout: float,
) -> Awaitable[Any]:
    """Start a publish whose result is the broker's confirm, without waiting for the frame's write.

    Frames go out in call order; `mandatory` is off, so unrouted audio is not returned to us in full.
    """
    basic_publish: Any = channel.basic_publish  # `wait` is on the concrete aiormq channel only
    return basic_publish(  # type: ignore[no-any-return]
        body,
        exchange=exchange,
        routing_key=routing_key,
        properties=properties,
        mandatory=False,
        wait=False,
        timeout=timeout,
    )


async def consume_raw(
    channel: RawChannel,
    queue: str,
    on_delivery: Callable[[DeliveredMessage], Coroutine[Any, Any, None]],
    on_cancelled: Callable[..., Any],
) -> None:
    """An exclusive no-ack consumer straight on aiormq (no aio-pika message object or task per delivery).

    `on_cancelled` runs when the broker cancels the consumer (e.g. its queue was deleted).
    """
    await channel.basic_consume(queue, on_delivery, no_ack=True, exclusive=True)
    channel.on_consumer_cancel_callbacks.add(on_cancelled)
