"""Echo agent: plays every caller's audio back to them half a second later; hangs up when they press #.

A complete RTVBP-bridge consumer in one file, using only aio-pika and msgpack:

- listen for new calls on `<prefix>.events` with the key `*.session.started`;
- for each call, bind the caller's audio (`<session>.in` on `<prefix>.audio`) and, after the delay,
  send it back as `audio` commands to `<prefix>.commands` with the session's routing key;
- on the digit `#`, send the command `request call.hangup`; forget the call on `session.ended`.

Run it next to a bridge (`make run`), then place a call with the simulator:

    python examples/echo_agent.py                      # --amqp-url, --prefix, --delay-ms
    rtvbp-bridge simulate --tone 440 --duration 3 --dtmf "#@2.5" --record-played out/echo.wav
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
from typing import Any

import aio_pika
import msgpack

log = logging.getLogger("echo_agent")


class EchoAgent:
    def __init__(self, channel: aio_pika.abc.AbstractChannel, prefix: str, delay_s: float) -> None:
        self.channel, self.prefix, self.delay_s = channel, prefix, delay_s
        self.calls: dict[str, asyncio.Queue[tuple[float, bytes]]] = {}  # session key -> audio to echo
        self.tasks: dict[str, asyncio.Task[None]] = {}

    async def start(self) -> None:
        topic = aio_pika.ExchangeType.TOPIC  # the bridge declares these exchanges the same way
        events = await self.channel.declare_exchange(f"{self.prefix}.events", topic, durable=True)
        self.audio_exchange = await self.channel.declare_exchange(f"{self.prefix}.audio", topic, durable=True)
        self.commands = await self.channel.get_exchange(f"{self.prefix}.commands", ensure=False)
        event_queue = await self.channel.declare_queue(exclusive=True)
        for key in ("*.session.started", "*.dtmf", "*.session.ended"):
            await event_queue.bind(events, key)
        self.audio_queue = await self.channel.declare_queue(exclusive=True)  # bound per call
        await event_queue.consume(self.on_event, no_ack=True)
        await self.audio_queue.consume(self.on_audio, no_ack=True)

    async def send(self, key: str, command: dict[str, Any]) -> None:
        body = msgpack.packb(command, use_bin_type=True)
        await self.commands.publish(
            aio_pika.Message(body, content_type="application/msgpack"), routing_key=key
        )

    async def on_event(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        try:
            event = msgpack.unpackb(message.body)
            key = (message.routing_key or "").split(".", 1)[0]  # the session's routing-key word
            kind, data = event["type"], event.get("data") or {}
            if kind == "session.started" and key not in self.calls:
                self.calls[key] = asyncio.Queue()
                self.tasks[key] = asyncio.create_task(self.echo(key, self.calls[key]))
                await self.audio_queue.bind(self.audio_exchange, f"{key}.in")
                log.info("call %s started: echoing with %.1f s delay", event["session_id"], self.delay_s)
            elif kind == "dtmf" and data.get("digit") == "#" and key in self.calls:
                log.info("call %s: # pressed, hanging up", event["session_id"])
                await self.send(
                    key,
                    {"type": "request", "method": "call.hangup", "params": {"reason": "caller pressed #"}},
                )
            elif kind == "session.ended" and key in self.calls:
                del self.calls[key]
                self.tasks.pop(key).cancel()
                await self.audio_queue.unbind(self.audio_exchange, f"{key}.in")
                log.info("call %s ended: %s", event["session_id"], data.get("reason"))
        except Exception:  # one bad message must never stop the agent
            log.exception("ignored an event on %s", message.routing_key)

    async def on_audio(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        try:
            queue = self.calls.get((message.routing_key or "").split(".", 1)[0])
            if queue is not None:
                queue.put_nowait(
                    (asyncio.get_running_loop().time() + self.delay_s, msgpack.unpackb(message.body)["audio"])
                )
        except Exception:
            log.exception("ignored audio on %s", message.routing_key)

    async def echo(self, key: str, queue: asyncio.Queue[tuple[float, bytes]]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due, audio = await queue.get()
            await asyncio.sleep(max(0.0, due - loop.time()))
            try:
                await self.send(key, {"type": "audio", "audio": audio})
            except Exception:
                log.exception("could not send audio to %s", key)


async def run(amqp_url: str, prefix: str, delay_s: float = 0.5, ready: asyncio.Event | None = None) -> None:
    connection = await aio_pika.connect_robust(amqp_url)
    async with connection:
        agent = EchoAgent(await connection.channel(), prefix, delay_s)
        await agent.start()
        log.info("echo agent ready on %s.* (delay %.1f s)", prefix, delay_s)
        if ready is not None:
            ready.set()
        await asyncio.Future()  # serve until cancelled


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--amqp-url", default=os.environ.get("BRIDGE_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    )
    parser.add_argument("--prefix", default=os.environ.get("BRIDGE_EXCHANGE_PREFIX", "rtvbp"))
    parser.add_argument("--delay-ms", type=int, default=500)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args.amqp_url, args.prefix, args.delay_ms / 1000))


if __name__ == "__main__":
    main()
