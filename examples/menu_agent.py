"""Menu agent: a DTMF-driven IVR menu that shows marks and barge-in.

On every new call it plays a prompt (one short beep per menu item: 400 Hz for item 1, 600 Hz for item
2) followed by the `mark` "prompt"; the bridge reports `playout.mark` when the caller has heard it all.
A digit pressed while audio is still playing barges in: the agent sends `clear` (the bridge drops its
queue and tells the voice to drop its buffer) before reacting. Then:

    1, 2   plays that choice's tone (1000 Hz / 1500 Hz, 1 s), then the mark "choice-<digit>"
    0      `request application.move`: back to the IVR (the call leaves this agent)
    #      `request call.hangup`
    other  a short low beep (300 Hz) and the prompt again

Uses only aio-pika and msgpack. Run it next to a bridge (`make run`), then call:

    python examples/menu_agent.py                      # --amqp-url, --prefix
    rtvbp-bridge simulate --duration 6 --dtmf "1@0.5,#@3.0" --record-played out/menu.wav --timeline
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import sys
from array import array
from typing import Any

import aio_pika
import msgpack

log = logging.getLogger("menu_agent")
PROMPT_HZ = {"1": 400.0, "2": 600.0}
CHOICE_HZ = {"1": 1000.0, "2": 1500.0}
ERROR_HZ = 300.0


def tone(hz: float, ms: int, rate: int, silence_ms: int = 0) -> bytes:
    """A sine tone (half scale) then silence, as L16 little-endian mono."""
    count = rate * ms // 1000
    samples = array("h", (int(16000 * math.sin(2 * math.pi * hz * i / rate)) for i in range(count)))
    samples.extend([0] * (rate * silence_ms // 1000))
    if sys.byteorder == "big":  # the bridge carries little-endian samples
        samples.byteswap()
    return samples.tobytes()


class MenuAgent:
    def __init__(self, channel: aio_pika.abc.AbstractChannel, prefix: str) -> None:
        self.channel, self.prefix = channel, prefix
        self.calls: dict[str, dict[str, Any]] = {}  # session key -> {"rate": Hz, "playing": mark or None}
        self.lock = asyncio.Lock()

    async def start(self) -> None:
        events = await self.channel.declare_exchange(
            f"{self.prefix}.events", aio_pika.ExchangeType.TOPIC, durable=True
        )
        self.commands = await self.channel.get_exchange(f"{self.prefix}.commands", ensure=False)
        queue = await self.channel.declare_queue(exclusive=True)
        for key in ("*.session.started", "*.dtmf", "*.playout.mark", "*.session.ended"):
            await queue.bind(events, key)
        await queue.consume(self.on_event, no_ack=True)

    async def send(self, key: str, command: dict[str, Any]) -> None:
        body = msgpack.packb(command, use_bin_type=True)
        await self.commands.publish(
            aio_pika.Message(body, content_type="application/msgpack"), routing_key=key
        )

    async def request(self, key: str, method: str, reason: str) -> None:
        """An application->voice request (a reply would need reply_to; this agent does not wait for one)."""
        await self.send(key, {"type": "request", "method": method, "params": {"reason": reason}})

    async def play(self, key: str, audio: bytes, mark: str) -> None:
        """Queue audio then a mark: `playout.mark` with that name means the caller heard all of it."""
        self.calls[key]["playing"] = mark  # first: a digit arriving while we publish is a barge-in
        await self.send(key, {"type": "audio", "audio": audio})
        await self.send(key, {"type": "mark", "name": mark})

    async def prompt(self, key: str) -> None:
        rate = self.calls[key]["rate"]
        await self.play(
            key, b"".join(tone(hz, 400, rate, silence_ms=300) for hz in PROMPT_HZ.values()), "prompt"
        )

    async def on_event(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with self.lock:  # aio-pika may run callbacks concurrently: keep each call's events in order
            await self.handle(message)

    async def handle(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        try:
            event = msgpack.unpackb(message.body)
            key = (message.routing_key or "").split(".", 1)[0]  # the session's routing-key word
            kind, data = event["type"], event.get("data") or {}
            if kind == "session.started":
                self.calls[key] = {"rate": data["audio_codec"]["sample_rate"], "playing": None}
                await self.prompt(key)
            elif kind == "session.ended":
                self.calls.pop(key, None)
            elif key not in self.calls:
                return  # a call this agent never saw start (e.g. started before the agent)
            elif kind == "playout.mark" and data.get("name") == self.calls[key]["playing"]:
                self.calls[key]["playing"] = None
                log.info("call %s: %s finished playing", event["session_id"], data["name"])
            elif kind == "dtmf":
                await self.on_digit(key, str(data.get("digit")))
        except Exception:  # one bad message must never stop the agent
            log.exception("ignored an event on %s", message.routing_key)

    async def on_digit(self, key: str, digit: str) -> None:
        call = self.calls[key]
        if call["playing"] is not None:  # barge-in: the caller does not have to wait for the prompt
            await self.send(key, {"type": "clear"})
            log.info("call %s: barge-in on %s during %s", key, digit, call["playing"])
            call["playing"] = None
        if digit in CHOICE_HZ:
            await self.play(key, tone(CHOICE_HZ[digit], 1000, call["rate"]), f"choice-{digit}")
        elif digit == "0":
            await self.request(key, "application.move", "caller asked for the main menu")
        elif digit == "#":
            await self.request(key, "call.hangup", "caller pressed #")
        else:
            await self.send(
                key, {"type": "audio", "audio": tone(ERROR_HZ, 300, call["rate"], silence_ms=200)}
            )
            await self.prompt(key)


async def run(amqp_url: str, prefix: str, ready: asyncio.Event | None = None) -> None:
    connection = await aio_pika.connect_robust(amqp_url)
    async with connection:
        await MenuAgent(await connection.channel(), prefix).start()
        log.info("menu agent ready on %s.*", prefix)
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
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args.amqp_url, args.prefix))


if __name__ == "__main__":
    main()
