"""`Wakeup`: the call timer's sleep, cut short by news (a new request deadline, a scheduled close)."""

from __future__ import annotations

import asyncio
import time


class Wakeup:
    """An Event-like flag whose `sleep_until` also ends at a deadline, without a task per wait."""

    __slots__ = ("_flag", "_waiter")

    def __init__(self) -> None:
        self._flag = False
        self._waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        self._flag = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def sleep_until(self, deadline: float | None) -> None:
        """Return at `deadline` (time.monotonic(); None = never) or as soon as set() is called."""
        if self._flag:
            self._flag = False
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiter = waiter
        handle = None
        if deadline is not None:
            handle = loop.call_later(max(0.0, deadline - time.monotonic()), _resolve, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            self._flag = False
            if handle is not None:
                handle.cancel()


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
