"""The benchmark's echo agent again, written on the consumer library (rtvbp_consumer) instead of raw
aio-pika: same bookkeeping, same report, so `bench.run` can set its CPU beside the raw agent's.

Like the raw agent, it asks for no reply to its echoes (`play(wait=False)`): the comparison is of the
plumbing (topology, decoding, routing, seq checks, per-call iterators), not of extra messages.
"""

from __future__ import annotations

import asyncio
import signal
import time

from rtvbp_consumer import Call, Consumer

from bench.agent import Agent
from bench.agent import main as agent_main
from bench.common import PROMPT_FLAG, frame


class LibraryAgent(Agent):
    async def run(self) -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        async with Consumer(self.args.amqp_url, self.args.prefix) as consumer:
            print("ready", flush=True)
            follow = asyncio.create_task(self.follow(consumer))
            await stop.wait()
            follow.cancel()

    async def follow(self, consumer: Consumer) -> None:
        calls = set()
        async for call in consumer.calls():
            task = asyncio.create_task(self.echo(call))
            calls.add(task)
            task.add_done_callback(calls.discard)

    async def echo(self, call: Call) -> None:
        async for audio in call.audio():
            index, first_seq = self.note_chunk(time.monotonic(), audio)
            published = time.monotonic()
            await call.play(audio, wait=False)
            self.published.append((published, index, first_seq))
            if index % self.args.probe_every == 0 and index not in self.first_seen:
                self.first_seen[index] = published
                asyncio.get_running_loop().create_task(self.probe_call(index, call))

    async def probe_call(self, index: int, call: Call) -> None:
        """Queue a 3 s prompt, then barge in 1 s later; the load generator times the silence."""
        await asyncio.sleep(self.args.probe_after)
        await call.play(b"".join(frame(index, PROMPT_FLAG | i) for i in range(150)), wait=False)
        await asyncio.sleep(1.0)
        self.clears.append((time.monotonic(), index))
        await call.clear()


def main() -> None:
    agent_main(LibraryAgent)


if __name__ == "__main__":
    main()
