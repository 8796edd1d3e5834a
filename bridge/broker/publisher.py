"""Ordered, confirmed publishing that survives broker blips.

Messages go out in the order they were submitted, up to `window` unconfirmed at a time (confirms are
pipelined, not awaited one by one). When the connection drops, the unconfirmed tail is kept and
published again, in order, once the robust connection is back; so a restart loses nothing that was
still held here, at the price of possible duplicates (consumers dedupe by `seq`). What is held is
bounded by the caller (per-session audio backlog) — this class never drops on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange

log = logging.getLogger("bridge.broker.publisher")

RETRY_PAUSE_S = 0.25


@dataclass(slots=True)
class Outgoing:
    exchange: str  # exchange name ("" = default exchange, used for replies)
    routing_key: str
    message: aio_pika.Message
    done: asyncio.Future[None] | None = None  # resolved on confirm (for callers that must know)
    on_sent: Callable[[float], None] | None = None  # called with confirm latency (s) after the confirm
    submitted: float = field(default_factory=time.monotonic)


class ConfirmingPublisher:
    def __init__(
        self, name: str, channel_factory: Callable[[], Awaitable[AbstractChannel]], window: int
    ) -> None:
        self.name = name
        self._channel_factory = channel_factory
        self._window = window
        self._queue: deque[Outgoing] = deque()
        self._wake = asyncio.Event()
        self._channel: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self.published = 0
        self.retried = 0
        self.failures = 0
        self.blocked = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"publisher-{self.name}")

    async def stop(self, flush_timeout_s: float = 5.0) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), flush_timeout_s)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def submit(self, item: Outgoing) -> None:
        self._queue.append(item)
        self._idle.clear()
        self._wake.set()

    @property
    def backlog(self) -> int:
        return len(self._queue)

    async def flushed(self) -> None:
        await self._idle.wait()

    async def _ensure_channel(self) -> AbstractChannel:
        if self._channel is None or self._channel.is_closed:
            self._channel = await self._channel_factory()
            self._exchanges.clear()
        return self._channel

    async def _exchange(self, channel: AbstractChannel, name: str) -> AbstractExchange:
        exchange = self._exchanges.get(name)
        if exchange is None:
            exchange = (
                channel.default_exchange if name == "" else await channel.get_exchange(name, ensure=False)
            )
            self._exchanges[name] = exchange
        return exchange

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = [self._queue.popleft() for _ in range(min(self._window, len(self._queue)))]
            # A caller that stopped waiting (e.g. a refused call's session.started) withdrew its message.
            batch = [item for item in batch if item.done is None or not item.done.cancelled()]
            if not batch:
                continue
            try:
                channel = await self._ensure_channel()
                exchanges = [await self._exchange(channel, item.exchange) for item in batch]
                # Tasks start in creation order and aiormq serialises frames under a FIFO lock: order holds.
                sends = [
                    asyncio.ensure_future(ex.publish(item.message, item.routing_key, timeout=10))
                    for ex, item in zip(exchanges, batch, strict=True)
                ]
                results = await asyncio.gather(*sends, return_exceptions=True)
            except Exception as exc:  # channel could not be had: broker away
                results = [exc] * len(batch)
            now = time.monotonic()
            failed_from = None
            for index, (item, result) in enumerate(zip(batch, results, strict=True)):
                if isinstance(result, BaseException):
                    failed_from = index
                    break
                self.published += 1
                if item.on_sent is not None:
                    item.on_sent(now - item.submitted)
                if item.done is not None and not item.done.done():
                    item.done.set_result(None)
            if failed_from is not None:
                # Keep order: put the failed item and everything after it back at the front.
                error = results[failed_from]
                retry = batch[failed_from:]
                self._queue.extendleft(reversed(retry))
                self.retried += len(retry)
                self.failures += 1
                log.warning(
                    "%s: publish failed (%s); %d held for retry",
                    self.name,
                    _describe(error),
                    len(self._queue),
                )
                self._channel = None
                await asyncio.sleep(RETRY_PAUSE_S)

    def fail_waiters(self, reason: Exception) -> None:
        """Give callers waiting on a confirm an answer (used when the service gives up)."""
        for item in self._queue:
            if item.done is not None and not item.done.done():
                item.done.set_exception(reason)


def _describe(error: object) -> str:
    return f"{type(error).__name__}: {error}"[:200]
