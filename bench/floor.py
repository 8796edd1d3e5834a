"""The I/O floor: the cheapest server doing the bridge's I/O with the same libraries.

WebSocket in -> chunks published to the audio exchange; commands consumed from a per-connection queue ->
exact frames paced to the socket. No protocol, no validation, no confirms, no telemetry. The session id
comes from the path (`/s/<id>`), so there is no handshake message either.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import time

import aio_pika
import msgpack
from websockets.asyncio.server import ServerConnection, serve

from bench.common import FRAME_BYTES, FRAME_S


class Floor:
    def __init__(self, url: str, prefix: str, chunk_ms: int, lead_ms: int) -> None:
        self.url, self.prefix = url, prefix
        self.chunk_bytes = FRAME_BYTES * chunk_ms // 20
        self.lead = lead_ms / 1000
        self.conn: aio_pika.abc.AbstractConnection | None = None

    async def start(self) -> None:
        self.conn = await aio_pika.connect(self.url)
        channel = await self.conn.channel()
        await channel.declare_exchange(f"{self.prefix}.audio", aio_pika.ExchangeType.TOPIC, durable=True)
        await channel.declare_exchange(
            f"{self.prefix}.commands",
            aio_pika.ExchangeType.DIRECT,
            durable=True,
            arguments={"alternate-exchange": f"{self.prefix}.unroutable"},
        )
        await channel.close()

    async def handle(self, ws: ServerConnection) -> None:
        assert self.conn is not None and ws.request is not None
        session = ws.request.path.rsplit("/", 1)[-1]
        channel = await self.conn.channel(publisher_confirms=False)
        audio_x = await channel.get_exchange(f"{self.prefix}.audio", ensure=False)
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(f"{self.prefix}.commands", routing_key=session)
        frames: collections.deque[bytes] = collections.deque()
        wake = asyncio.Event()

        async def on_command(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            body = msgpack.unpackb(message.body)
            if body["type"] == "audio":
                audio = body["audio"]
                frames.extend(audio[i : i + FRAME_BYTES] for i in range(0, len(audio), FRAME_BYTES))
                wake.set()
            elif body["type"] == "clear":
                frames.clear()

        await queue.consume(on_command, no_ack=True)

        async def pacer() -> None:
            anchor = 0.0
            sent = 0
            while True:
                if not frames:
                    wake.clear()
                    await wake.wait()
                    anchor, sent = time.monotonic(), 0  # re-anchor only on underrun
                due = anchor + sent * FRAME_S - self.lead
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if frames:
                    await ws.send(frames.popleft())
                    sent += 1

        pacing = asyncio.create_task(pacer())
        buffer = bytearray()
        seq = 0
        samples = 0
        try:
            async for message in ws:
                if not isinstance(message, bytes):
                    continue
                buffer += message
                while len(buffer) >= self.chunk_bytes:
                    chunk = bytes(buffer[: self.chunk_bytes])
                    del buffer[: self.chunk_bytes]
                    body = {
                        "type": "audio",
                        "session_id": session,
                        "seq": seq,
                        "ts": samples // 8,
                        "audio": chunk,
                    }
                    await audio_x.publish(aio_pika.Message(msgpack.packb(body)), routing_key=f"{session}.in")
                    seq += 1
                    samples += len(chunk) // 2
        finally:
            pacing.cancel()
            with contextlib.suppress(Exception):
                await channel.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--chunk-ms", type=int, default=100)
    parser.add_argument("--lead-ms", type=int, default=100)
    parser.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto")
    args = parser.parse_args()
    floor = Floor(args.amqp_url, args.prefix, args.chunk_ms, args.lead_ms)
    await floor.start()
    async with serve(floor.handle, "127.0.0.1", args.port, compression=None, max_size=2**20):
        print("ready", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    import sys

    from bridge.loop import run

    loop = sys.argv[sys.argv.index("--loop") + 1] if "--loop" in sys.argv else "auto"
    with contextlib.suppress(KeyboardInterrupt):
        run(main(), loop)  # type: ignore[arg-type]
