"""The replay stream: every event and audio chunk also kept in a RabbitMQ stream queue (opt-in).

A stream is an append-only log that any number of consumers read from any offset with plain AMQP 0-9-1
(`x-stream-offset` on basic.consume), so a consumer that attaches late, or restarts mid-call, reads the
call from its first message. Bound to the events and audio exchanges with `#`: it sees what every live
consumer could see. Retention is by age and, optionally, by size.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import aiormq
from aio_pika.abc import AbstractRobustConnection

from bridge.broker.names import Topology

log = logging.getLogger("bridge.replay")


@dataclass(frozen=True, slots=True)
class ReplaySettings:
    max_age_s: int = 3600
    max_bytes: int | None = None

    def queue_arguments(self) -> dict[str, Any]:
        args: dict[str, Any] = {"x-queue-type": "stream", "x-max-age": f"{self.max_age_s}s"}
        if self.max_bytes is not None:
            args["x-max-length-bytes"] = self.max_bytes
        return args


async def declare_replay_stream(
    conn: AbstractRobustConnection, topology: Topology, settings: ReplaySettings
) -> bool:
    """Declare and bind the stream; False (logged once) when an existing one has other retention arguments."""
    channel = await conn.channel()
    try:
        queue = await channel.declare_queue(
            topology.replay, durable=True, arguments=settings.queue_arguments()
        )
        await queue.bind(topology.events, "#")
        await queue.bind(topology.audio, "#")
        return True
    except aiormq.exceptions.ChannelPreconditionFailed as exc:
        log.error(
            "replay stream %s exists with other arguments than %s; keeping it as it is (%s). "
            "Delete it, or set BRIDGE_REPLAY_MAX_AGE_S / BRIDGE_REPLAY_MAX_BYTES to match.",
            topology.replay,
            settings.queue_arguments(),
            exc,
        )
        return False
    finally:
        if not channel.is_closed:
            await channel.close()
