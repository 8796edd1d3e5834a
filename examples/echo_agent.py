"""Echo agent: plays every caller's audio back to them half a second later; hangs up when they press #.

Built on the consumer library (`pip install ./clients/python`). Run it next to a bridge (`make run`),
then place a call with the simulator:

    python examples/echo_agent.py                      # --amqp-url, --prefix, --delay-ms, --group
    rtvbp-bridge simulate --tone 440 --duration 3 --dtmf "#@2.5" --record-played out/echo.wav

Start several with the same `--group` and each call is served by exactly one of them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os

from rtvbp_consumer import Call, CommandError, Consumer, Dtmf

log = logging.getLogger("echo_agent")


async def echo(call: Call, delay_s: float) -> None:
    hanging_up = asyncio.Event()

    async def play_back() -> None:
        loop = asyncio.get_running_loop()
        first_heard, heard_ms = 0.0, 0.0
        async for chunk in call.audio():  # the caller talks in real time: chunk n is due delay_s after it
            first_heard = first_heard or loop.time()
            await asyncio.sleep(max(0.0, first_heard + delay_s + heard_ms / 1000 - loop.time()))
            heard_ms += len(chunk) / call.codec.bytes_per_ms
            if not hanging_up.is_set():  # no wait for the reply: a failure would arrive as an event
                await call.play(chunk, wait=False)

    async def watch_digits() -> None:
        async for event in call.events():
            if isinstance(event, Dtmf) and event.digit == "#":
                log.info("call %s: # pressed, hanging up", call.session_id)
                hanging_up.set()
                with contextlib.suppress(CommandError):  # the caller may hang up first
                    await call.hangup("caller pressed #")

    log.info("call %s started: echoing with %.1f s delay", call.session_id, delay_s)
    try:
        await asyncio.gather(play_back(), watch_digits())
    except CommandError as exc:  # e.g. the broker has been away too long: this call only
        log.warning("call %s: stopped echoing: %s", call.session_id, exc)
        return
    log.info("call %s ended: %s", call.session_id, (await call.ended()).reason)


async def run(
    amqp_url: str,
    prefix: str,
    delay_s: float = 0.5,
    ready: asyncio.Event | None = None,
    group: str | None = None,
) -> None:
    async with Consumer(amqp_url, prefix, group=group) as consumer:
        log.info("echo agent ready on %s.* (delay %.1f s)", prefix, delay_s)
        if ready is not None:
            ready.set()
        async with asyncio.TaskGroup() as calls:
            async for call in consumer.calls():
                calls.create_task(echo(call, delay_s))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--amqp-url", default=os.environ.get("BRIDGE_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    )
    parser.add_argument("--prefix", default=os.environ.get("BRIDGE_EXCHANGE_PREFIX", "rtvbp"))
    parser.add_argument("--delay-ms", type=int, default=500)
    parser.add_argument("--group", help="share calls with other agents started with the same group")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args.amqp_url, args.prefix, args.delay_ms / 1000, group=args.group))


if __name__ == "__main__":
    main()
