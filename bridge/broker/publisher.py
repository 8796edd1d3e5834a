"""Ordered, confirmed publishing that survives broker blips.

Messages go out in the order they were submitted with up to `window` unconfirmed at a time: confirms
are pipelined continuously, never awaited one by one or batch by batch. In the steady state (channel
open, nothing failed) both submitting and settling run inline, in the caller and in the confirm's
callback: the publisher's task sleeps and costs no wake-up per message; it takes over to connect and to
recover. When the connection drops, the
unconfirmed tail is kept and published again, in order, once the robust connection is back; so a
restart loses nothing that was still held here, at the price of possible duplicates (consumers dedupe
by `seq`). What is held is bounded by the caller (per-session audio backlog) — this class never drops.

It talks to aiormq directly (bridge.compat.aiormq): aio-pika's `Exchange.publish` builds a Message object
per publish, asks for `mandatory` (so unrouted audio would be returned to us in full) and waits for each
frame to be written before the next may go; none of that is wanted on this path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aio_pika.abc import AbstractChannel

from bridge.compat.aiormq import Properties, RawChannel, publish_nowait, raw_channel

log = logging.getLogger("bridge.broker.publisher")

RETRY_PAUSE_S = 0.25
PUBLISH_TIMEOUT_S = 10.0
DEAD_CHANNEL_S = 3.0


@dataclass(slots=True)
class Outgoing:
    exchange: str  # exchange name ("" = default exchange, used for replies)
    routing_key: str
    body: bytes
    properties: Properties
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
        self._inflight: deque[tuple[Outgoing, asyncio.Future[Any]]] = deque()
        self._wake = asyncio.Event()
        self._channel: AbstractChannel | None = None
        self._live: RawChannel | None = None  # the underlay last published on
        self._parked = False  # the task sleeps with nothing to recover: inline publishing is safe
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed_since = 0.0
        self.published = 0
        self.retried = 0
        self.failures = 0

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
        if self._parked:
            self._pump()
        else:
            self._wake.set()

    async def _underlay(self) -> RawChannel:
        if self._channel is None:
            self._channel = await self._channel_factory()
        self._live = await raw_channel(self._channel)
        return self._live

    def _on_settled(self, _: asyncio.Future[Any]) -> None:
        if not self._parked:
            self._wake.set()
        elif not self._reap():
            self._hand_over()  # the oldest publish failed: the task recovers, in order
        else:
            self._pump()

    def _pump(self) -> None:
        """Inline publishing while parked; anything unusual goes back to the task."""
        if self._queue:
            live = self._live
            if live is None or live.is_closed:
                self._hand_over()
                return
            self._start_publishes(live)
        if not self._queue and not self._inflight:
            self._idle.set()

    def _hand_over(self) -> None:
        self._parked = False
        self._wake.set()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            if self._queue and len(self._inflight) < self._window:
                try:
                    channel = await self._underlay()
                except Exception as exc:  # no channel: the broker is away; keep everything, try again
                    await self._recover(exc)
                    continue
                self._start_publishes(channel)
            if not self._reap():
                await self._recover_inflight()
                continue
            if not self._queue and not self._inflight:
                self._idle.set()
            if not self._wake.is_set():
                self._parked = True
                try:
                    await self._wake.wait()
                finally:
                    self._parked = False

    def _start_publishes(self, channel: RawChannel) -> None:
        # Each publish is its own task only so its confirm can be awaited; aiormq frames them in call order.
        while self._queue and len(self._inflight) < self._window:
            item = self._queue.popleft()
            if item.done is not None and item.done.cancelled():
                continue  # the caller withdrew it (e.g. a refused call's session.started)
            publish: asyncio.Future[Any] = asyncio.ensure_future(
                publish_nowait(
                    channel,
                    item.body,
                    exchange=item.exchange,
                    routing_key=item.routing_key,
                    properties=item.properties,
                    timeout=PUBLISH_TIMEOUT_S,
                )
            )
            publish.add_done_callback(self._on_settled)
            self._inflight.append((item, publish))

    def _reap(self) -> bool:
        """Settle confirmed publishes in submission order; False when the oldest one failed."""
        now = time.monotonic()
        while self._inflight and self._inflight[0][1].done():
            item, publish = self._inflight[0]
            if publish.cancelled() or publish.exception() is not None:
                return False
            self._inflight.popleft()
            self.published += 1
            if item.on_sent is not None:
                item.on_sent(now - item.submitted)
            if item.done is not None and not item.done.done():
                item.done.set_result(None)
        return True

    async def _recover_inflight(self) -> None:
        """The oldest unconfirmed publish failed: everything from it on goes back, in order."""
        publishes = [p for _, p in self._inflight]
        await asyncio.gather(*publishes, return_exceptions=True)
        first = publishes[0]
        error: object = "cancelled" if first.cancelled() else first.exception()
        retry = [item for item, _ in self._inflight]
        self._inflight.clear()
        self._queue.extendleft(reversed(retry))
        self.retried += len(retry)
        if isinstance(error, TimeoutError) and (channel := self._channel) is not None:
            # Unconfirmed for PUBLISH_TIMEOUT_S on an open channel: it may be wedged, so retry on a new one.
            self._channel = self._live = None
            with contextlib.suppress(Exception):
                await channel.close()
        await self._recover(error)

    async def _recover(self, error: object) -> None:
        self.failures += 1
        channel = self._channel
        if channel is not None and channel.is_closed:
            # A robust channel reopens with its connection; one closed on its own for long is dead.
            self._closed_since = self._closed_since or time.monotonic()
            if time.monotonic() - self._closed_since > DEAD_CHANNEL_S:
                self._channel, self._closed_since = None, 0.0
                with contextlib.suppress(Exception):
                    await channel.close()  # or the robust connection would restore it forever
        else:
            self._closed_since = 0.0
        log.warning(
            "%s: publish failed (%s); %d held for retry", self.name, _describe(error), len(self._queue)
        )
        await asyncio.sleep(RETRY_PAUSE_S)


def _describe(error: object) -> str:
    return f"{type(error).__name__}: {error}"[:200]
