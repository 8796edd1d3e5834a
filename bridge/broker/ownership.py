"""Who owns a session: the exclusive command queue `<prefix>.session.<key>` is the cluster-wide lock.

Its consumer feeds the session's commands to the link; its exclusivity refuses a second claim of the same
session on any replica. An exclusive queue does not lock against its own connection, so this process
also keeps the keys it holds (`LocalOwnership`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from aio_pika.abc import AbstractRobustChannel

from bridge.broker.client import BrokerClient
from bridge.compat.aiormq import ChannelLockedResource, DeliveredMessage, consume_raw, raw_channel
from bridge.port import CallRefused

log = logging.getLogger("bridge.link")

# After a broker blip another replica may hold our session's queue; our own dead connection can too,
# until the broker reaps it. Keep trying this long before ending the call as "ownership lost".
RECLAIM_GRACE_S = 3.0
RECLAIM_RETRY_S = 0.25

Delivery = Callable[[DeliveredMessage], Coroutine[Any, Any, None]]


class LocalOwnership:
    """Session keys held by this process: an exclusive queue does not lock against its own connection."""

    def __init__(self) -> None:
        self._held: set[str] = set()

    def claim(self, key: str) -> bool:
        if key in self._held:
            return False
        self._held.add(key)
        return True

    def release(self, key: str) -> None:
        self._held.discard(key)


class CommandQueue:
    """One session's exclusive command queue: claimed at start, re-claimed after a blip, released at end.

    Not robust in aio-pika's sense: its automatic restore of a queue another replica took meanwhile fails
    the whole consuming connection (every call loses its commands, forever). So this re-claims the queue
    itself after a reconnect or a broker-side cancel, and calls `on_lost` (ending only its own call) if
    another bridge holds it beyond a grace.
    """

    def __init__(
        self,
        broker: BrokerClient,
        session_id: str,
        key: str,
        on_delivery: Delivery,
        on_lost: Callable[[], None],
    ) -> None:
        self.broker = broker
        self.session_id = session_id
        self.key = key
        self._on_delivery = on_delivery
        self._on_lost = on_lost
        self._channel: AbstractRobustChannel | None = None
        self._reclaim: asyncio.Task[None] | None = None

    async def claim(self) -> None:
        """Take the queue and start consuming; CallRefused (409 taken, 503 broker) when that fails."""
        try:
            channel = await self.broker.session_channel()
        except Exception as exc:  # closed, or closing under us (aio-pika raises RuntimeError then)
            why = f"broker unavailable: cannot bridge this call ({type(exc).__name__})"
            raise CallRefused(503, why) from None
        self._channel = channel
        try:
            await self._consume(channel)
        except ChannelLockedResource:
            await self.release()
            raise CallRefused(409, f"session {self.session_id} is already active on another bridge") from None
        except Exception as exc:
            await self.release()
            raise CallRefused(
                503, f"cannot claim the session's command queue: {type(exc).__name__}"
            ) from None
        channel.reopen_callbacks.add(self._on_channel_reopened)

    async def release(self) -> None:
        if self._reclaim is not None:
            self._reclaim.cancel()
        if self._channel is not None:
            channel, self._channel = self._channel, None
            with contextlib.suppress(Exception):
                await channel.close()

    async def _consume(self, channel: AbstractRobustChannel) -> None:
        queue = await channel.declare_queue(
            self.broker.topology.session_queue(self.key), exclusive=True, auto_delete=True, robust=False
        )
        await queue.bind(self.broker.topology.commands, routing_key=self.key, robust=False)
        await consume_raw(await raw_channel(channel), queue.name, self._on_delivery, self._on_cancelled)

    def _on_channel_reopened(self, *_: object) -> None:
        self._start_reclaim("the broker connection was restored")

    def _on_cancelled(self, *_: object) -> None:
        self._start_reclaim("the broker cancelled the command consumer")  # e.g. the queue was deleted

    def _start_reclaim(self, why: str) -> None:
        if self._channel is None or (self._reclaim is not None and not self._reclaim.done()):
            return
        log.warning("re-claiming the command queue: %s", why)
        self._reclaim = asyncio.create_task(self._reclaim_queue())

    async def _reclaim_queue(self) -> None:
        """Take the command queue back; if another bridge holds it beyond the grace, the call is lost."""
        deadline = asyncio.get_running_loop().time() + RECLAIM_GRACE_S
        while (channel := self._channel) is not None:
            try:
                await self._consume(channel)
                log.info("command queue re-claimed")
                return
            except ChannelLockedResource:
                # Possibly our own dead connection not yet reaped by the broker: retry within the grace.
                if asyncio.get_running_loop().time() >= deadline:
                    break
            except Exception as exc:  # broker still away: the robust connection will reopen the channel
                log.warning("command queue not re-claimed yet (%s)", type(exc).__name__)
                return
            await asyncio.sleep(RECLAIM_RETRY_S)
        if self._channel is None:
            return
        self._channel.reopen_callbacks.discard(self._on_channel_reopened)
        log.error("session %s is now owned by another bridge: ending this call", self.session_id)
        self._on_lost()
