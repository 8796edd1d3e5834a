"""Fault injection on the real broker through `rabbitmqctl`, aimed only at this test's own bridge.

Every bridge names its AMQP connections `rtvbp-bridge <instance_id> publish|consume`; tests give their
bridges unique instance ids, so closing "our" connection never disturbs anyone else sharing the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import time
from collections.abc import AsyncIterator

from tests.support.polling import until as until  # re-exported: the resilience tests import it from here

_CONNECTION_NAME = re.compile(r'\{"connection_name","([^"]*)"\}')
NORMAL_WATERMARK = "0.4"  # the broker's default; restored after every alarm


def rabbitmqctl(*args: str) -> str:
    done = subprocess.run(
        ["rabbitmqctl", "-q", *args], check=True, capture_output=True, text=True, timeout=60
    )
    return done.stdout


def connection_pids(name: str) -> list[str]:
    """Erlang pids of the live connections whose client-provided name is exactly `name`."""
    out = rabbitmqctl("list_connections", "--no-table-headers", "pid", "client_properties")
    pids = []
    for line in out.splitlines():
        pid, _, props = line.partition("\t")
        match = _CONNECTION_NAME.search(props)
        if match and match.group(1) == name:
            pids.append(pid)
    return pids


async def close_connection(name: str, reason: str = "resilience test") -> int:
    """Force-close the named connection(s) from the broker side; returns how many were closed."""
    pids = await asyncio.to_thread(connection_pids, name)
    for pid in pids:
        await asyncio.to_thread(rabbitmqctl, "close_connection", pid, reason)
    return len(pids)


async def delete_queue(name: str) -> None:
    """Delete a queue from the broker side (works on exclusive queues, unlike a client's queue.delete)."""
    await asyncio.to_thread(rabbitmqctl, "delete_queue", name)


async def until_consumers(name: str, count: int, timeout: float) -> None:
    """Wait for a queue to have `count` consumers. rabbitmqctl takes about a second: never on the loop,
    which the bridge under test shares (a blocked loop would look like a bridge stall)."""
    deadline = time.monotonic() + timeout
    while (found := await asyncio.to_thread(queue_consumers, name)) != count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{name}: {found} consumers after {timeout:.0f} s, expected {count}")


def queue_consumers(name: str) -> int | None:
    """Consumers on a queue, or None when the queue does not exist."""
    out = rabbitmqctl("list_queues", "--no-table-headers", "name", "consumers")
    for line in out.splitlines():
        queue, _, consumers = line.partition("\t")
        if queue == name:
            return int(consumers)
    return None


@contextlib.asynccontextmanager
async def memory_alarm() -> AsyncIterator[None]:
    """Raise the broker's memory alarm (publishers get connection.blocked); always lowered again."""
    await asyncio.to_thread(rabbitmqctl, "set_vm_memory_high_watermark", "0.0000001")
    try:
        yield
    finally:
        await asyncio.to_thread(rabbitmqctl, "set_vm_memory_high_watermark", NORMAL_WATERMARK)
