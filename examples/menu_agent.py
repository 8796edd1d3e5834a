"""Menu agent: a DTMF-driven IVR menu that shows marks and barge-in.

On every new call it plays a prompt (one short beep per menu item: 400 Hz for item 1, 600 Hz for item
2) followed by the `mark` "prompt"; the bridge reports `playout.mark` when the caller has heard it all.
A digit pressed while audio is still playing barges in: the agent sends `clear` (the bridge drops its
queue and tells the voice to drop its buffer) before reacting. Then:

    1, 2   plays that choice's tone (1000 Hz / 1500 Hz, 1 s), then the mark "choice-<digit>"
    0      `request application.move`: back to the IVR (the call leaves this agent)
    #      `request call.hangup`
    other  a short low beep (300 Hz) and the prompt again

Built on the consumer library (`pip install ./clients/python`). Run it next to a bridge (`make run`),
then call:

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

from rtvbp_consumer import Call, CommandError, Consumer, Dtmf

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


def prompt(rate: int) -> bytes:
    return b"".join(tone(hz, 400, rate, silence_ms=300) for hz in PROMPT_HZ.values())


async def menu(call: Call) -> None:
    rate = call.codec.sample_rate
    playing: asyncio.Task[None] | None = None

    async def say(audio: bytes, name: str) -> None:
        try:
            await call.play(audio)
            if await call.mark(name) is not None:  # None: a barge-in dropped it
                log.info("call %s: %s finished playing", call.session_id, name)
        except CommandError as exc:
            log.info("call %s: %s not played: %s", call.session_id, name, exc)

    def start(audio: bytes, name: str) -> None:
        nonlocal playing
        playing = asyncio.create_task(say(audio, name))

    start(prompt(rate), "prompt")
    async for event in call.events():
        if not isinstance(event, Dtmf):
            continue
        try:
            if playing is not None and not playing.done():  # barge-in: no need to wait for the prompt
                log.info("call %s: barge-in on %s", call.session_id, event.digit)
                await call.clear()
            if event.digit in CHOICE_HZ:
                start(tone(CHOICE_HZ[event.digit], 1000, rate), f"choice-{event.digit}")
            elif event.digit == "0":
                await call.move("caller asked for the main menu")
            elif event.digit == "#":
                await call.hangup("caller pressed #")
            else:
                start(tone(ERROR_HZ, 300, rate, silence_ms=200) + prompt(rate), "prompt")
        except CommandError as exc:  # e.g. the caller hung up meanwhile
            log.info("call %s: %s", call.session_id, exc)


async def run(amqp_url: str, prefix: str, ready: asyncio.Event | None = None) -> None:
    async with Consumer(amqp_url, prefix) as consumer:
        log.info("menu agent ready on %s.*", prefix)
        if ready is not None:
            ready.set()
        async with asyncio.TaskGroup() as calls:
            async for call in consumer.calls():
                calls.create_task(menu(call))


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
