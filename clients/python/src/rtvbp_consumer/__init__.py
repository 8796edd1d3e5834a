"""rtvbp_consumer: write rtvbp-bridge consumers (voice agents, IVRs, recorders) in a few lines.

    async with Consumer("amqp://guest:guest@127.0.0.1:5672/", prefix="rtvbp") as consumer:
        async for call in consumer.calls():
            asyncio.create_task(handle(call))

Depends only on aio-pika and msgpack. The Pipecat transport is `rtvbp_consumer.pipecat`
(extra `rtvbp-consumer[pipecat]`).
"""

from rtvbp_consumer.call import Call, ClearResult
from rtvbp_consumer.consumer import Consumer
from rtvbp_consumer.errors import CommandError, ReplayUnavailable
from rtvbp_consumer.events import (
    AudioGap,
    AudioInfo,
    CallHangup,
    Codec,
    CommandRejected,
    Dtmf,
    Event,
    EventGap,
    PlayoutMark,
    SessionEnded,
    SessionUpdated,
)

__all__ = [
    "AudioGap",
    "AudioInfo",
    "Call",
    "CallHangup",
    "ClearResult",
    "Codec",
    "CommandError",
    "CommandRejected",
    "Consumer",
    "Dtmf",
    "Event",
    "EventGap",
    "PlayoutMark",
    "ReplayUnavailable",
    "SessionEnded",
    "SessionUpdated",
]
