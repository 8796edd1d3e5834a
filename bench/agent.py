"""The benchmark's consumer: receives every caller chunk and plays it straight back (echo).

It records, per chunk, when it arrived (upstream latency) and when its echo was published (downstream
latency), checks every call's frames for gaps, duplicates and reordering, and on probe calls queues a
3 s prompt then barges in with `clear` to time the silence. Same code for the bridge and the floor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from collections.abc import Callable
from typing import Any

import aio_pika
import msgpack

from bench.common import PROMPT_FLAG, frame, tags


class Agent:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.upstream: list[tuple[float, int, int]] = []  # (received, call, last frame seq)
        self.published: list[tuple[float, int, int]] = []  # (publish time, call, first frame seq)
        self.clears: list[tuple[float, int]] = []  # (clear time, call)
        self.next_seq: dict[int, int] = {}
        self.lost = self.duplicated = self.reordered = 0
        self.first_seen: dict[int, float] = {}
        self.exchange: aio_pika.abc.AbstractExchange | None = None

    async def run(self) -> None:
        conn = await aio_pika.connect(self.args.amqp_url)
        channel = await conn.channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=2000)
        audio = await channel.declare_exchange(
            f"{self.args.prefix}.audio", aio_pika.ExchangeType.TOPIC, durable=True
        )
        self.exchange = await channel.get_exchange(f"{self.args.prefix}.commands", ensure=False)
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(audio, "*.in")
        await queue.consume(self.on_chunk, no_ack=True)
        print("ready", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await conn.close()

    def note_chunk(self, received: float, audio: bytes) -> tuple[int, int]:
        """Check a chunk's frame tags; returns (call index, first frame seq)."""
        frame_tags = tags(audio)
        call = frame_tags[0][0]
        self.upstream.append((received, call, frame_tags[-1][1]))
        for _, seq in frame_tags:
            expected = self.next_seq.get(call, 0)
            if seq == expected:
                self.next_seq[call] = seq + 1
            elif seq > expected:
                self.lost += seq - expected
                self.next_seq[call] = seq + 1
            elif seq < expected:
                self.duplicated += 1  # seen before (a later one already arrived): duplicate or reorder
        return call, frame_tags[0][1]

    async def on_chunk(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        received = time.monotonic()
        body = msgpack.unpackb(message.body)
        audio: bytes = body["audio"]
        call, first_seq = self.note_chunk(received, audio)
        session = body["session_id"]
        assert self.exchange is not None
        published = time.monotonic()
        await self.exchange.publish(
            aio_pika.Message(msgpack.packb({"type": "audio", "audio": audio})), session
        )
        self.published.append((published, call, first_seq))
        if call % self.args.probe_every == 0 and call not in self.first_seen:
            self.first_seen[call] = received
            asyncio.get_running_loop().create_task(self.probe(call, session))

    async def probe(self, call: int, session: str) -> None:
        """Queue a 3 s prompt, then barge in 1 s later; the load generator times the silence."""
        assert self.exchange is not None
        await asyncio.sleep(self.args.probe_after)
        prompt = b"".join(frame(call, PROMPT_FLAG | i) for i in range(150))
        await self.exchange.publish(
            aio_pika.Message(msgpack.packb({"type": "audio", "audio": prompt})), session
        )
        await asyncio.sleep(1.0)
        cleared = time.monotonic()
        await self.exchange.publish(aio_pika.Message(msgpack.packb({"type": "clear"})), session)
        self.clears.append((cleared, call))

    def report(self) -> dict[str, Any]:
        return {
            "upstream": self.upstream,
            "published": self.published,
            "clears": self.clears,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "frames_expected": sum(self.next_seq.values()),
        }


def main(agent_class: Callable[[argparse.Namespace], Any] | None = None) -> None:
    """Run an echo agent until SIGTERM, then write its report (also the library agent's entry point)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--probe-every", type=int, default=10)
    parser.add_argument("--probe-after", type=float, default=4.0)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    agent = (agent_class or Agent)(args)
    asyncio.run(agent.run())
    with open(args.out, "w") as f:
        json.dump(agent.report(), f)


if __name__ == "__main__":
    main()
