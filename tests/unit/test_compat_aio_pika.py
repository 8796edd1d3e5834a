"""The aio-pika hook the broker address list relies on (bridge/compat/aio_pika.py).

When an upgrade renames or reshapes it, this fails here instead of the bridge quietly reconnecting to a
dead cluster node forever. The behaviour (dead addresses skipped, failover mid-call) is tested live in
tests/integration/test_broker_client.py and tests/cluster.
"""

from __future__ import annotations

import asyncio
import inspect

from aio_pika.robust_connection import RobustConnection
from yarl import URL

from bridge.compat.aio_pika import RotatingRobustConnection

URLS = [URL("amqp://u:p@127.0.0.1:5672/"), URL("amqp://u:p@127.0.0.2:5672/"), URL("amqp://u:p@127.0.0.3:5672/")]


def test_the_reconnect_loop_still_reports_closes_through_on_connection_close() -> None:
    hook = RobustConnection.__dict__.get("_on_connection_close")
    assert hook is not None and inspect.iscoroutinefunction(hook), "aio-pika moved its close hook"
    assert list(inspect.signature(hook).parameters) == ["self", "closing"]
    assert isinstance(inspect.getattr_static(RobustConnection, "close_called"), property)


async def test_each_close_moves_to_the_next_url_and_wraps_around() -> None:
    moves: list[tuple[str, str]] = []
    conn = RotatingRobustConnection(URLS, 1, on_move=lambda a, b: moves.append((a.host or "", b.host or "")))
    assert conn.url == URLS[1]
    closing: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    closing.set_result(None)
    for _ in range(3):
        await conn._on_connection_close(closing)
    assert moves == [("127.0.0.2", "127.0.0.3"), ("127.0.0.3", "127.0.0.1"), ("127.0.0.1", "127.0.0.2")]
    assert conn.url == URLS[1]
    await conn.close()
    await conn._on_connection_close(closing)  # closed on purpose: the URL stays
    assert conn.url == URLS[1] and len(moves) == 3
