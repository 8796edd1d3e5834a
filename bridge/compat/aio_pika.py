"""aio-pika: the one hook of its robust connection that the bridge overrides (aio-pika is pinned).

A robust connection knows one URL and reconnects to it. To fail over across the nodes of a cluster, the
URL must move to the next address between attempts; aio-pika's reconnect loop offers no public hook for
that, but reports every failed attempt and every lost connection through `_on_connection_close` before it
waits and reconnects to `self.url`. tests/unit/test_compat_aio_pika.py fails when an upgrade changes it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from aio_pika.robust_connection import RobustConnection
from yarl import URL

__all__ = ["RotatingRobustConnection"]


class RotatingRobustConnection(RobustConnection):
    """A robust connection that moves on to its next URL after every failed attempt or lost connection."""

    def __init__(
        self,
        urls: Sequence[URL],
        start: int,
        on_move: Callable[[URL, URL], None] | None = None,
        **kwargs: Any,
    ) -> None:
        self.urls = tuple(urls)
        self.index = start % len(self.urls)
        self._on_move = on_move  # told (left, next) each time the URL moves on
        super().__init__(self.urls[self.index], **kwargs)

    async def _on_connection_close(self, closing: Any) -> None:
        if not (self.close_called or self.is_closed) and len(self.urls) > 1:
            left = self.url
            self.index = (self.index + 1) % len(self.urls)
            self.url = self.urls[self.index]
            if self._on_move is not None:
                self._on_move(left, self.url)
        await super()._on_connection_close(closing)
