"""Replay one call from its first message: read `<prefix>.replay` (a RabbitMQ stream) with plain AMQP 0-9-1.

Works when the bridge runs with BRIDGE_REPLAY=true. A consumer that attaches late, or restarts in the
middle of a call, still gets the call from `seq` 0:

- seek: `x-stream-offset` set to a timestamp a little before the call's `session.started` (`ts` in its
  body); the stream keeps every call's messages, so filter by the session key (first routing-key word);
- resume: every delivery carries its stream offset in the `x-stream-offset` header; this program saves
  the last offset it has handled (with the length of its output) in a state file, and restarts from the
  next one, so a consumer killed at any point ends with every chunk exactly once;
- stop: at the call's `session.ended`, once the last audio chunk it counts is in (audio and events are
  published on separate channels, so the stream may hold the last chunks just after `session.ended`).

The caller's audio is appended to `--out` (raw L16 in the call's codec); each event is printed as a line
of JSON.

    python examples/replay_call.py --session abc123 --since-ms 1765000000000 --out abc123.raw
    python examples/replay_call.py --session abc123 --state abc123.state --out abc123.raw   # resumable
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import msgpack

SEEK_MARGIN_MS = 2000  # stream timestamps are per chunk of messages: start a little early, filter after


class CallReplay:
    def __init__(self, session: str, out: Path, state: Path | None) -> None:
        self.session, self.out, self.state = session, out, state
        self.offset: int | None = None  # last stream offset handled
        self.audio_seq = -1  # last caller-audio chunk written
        self.expect_chunks: int | None = None  # from session.ended: how many chunks the call had
        self.done = asyncio.Event()
        if state is not None and state.exists():
            saved = json.loads(state.read_text())
            self.offset, self.audio_seq = saved["offset"], saved["audio_seq"]
            self.expect_chunks = saved["expect_chunks"]
            with open(out, "ab") as f:  # drop whatever was written after the last saved state
                f.truncate(saved["out_bytes"])
        elif out.exists():
            out.unlink()

    def start_at(self, since_ms: int | None) -> Any:
        if self.offset is not None:
            return self.offset + 1
        if since_ms is not None:
            return datetime.fromtimestamp((since_ms - SEEK_MARGIN_MS) / 1000, tz=UTC)
        return "first"

    async def on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        offset = int((message.headers or {})["x-stream-offset"])  # type: ignore[call-overload]
        key, _, rest = (message.routing_key or "").partition(".")
        if key == self.session and (self.offset is None or offset > self.offset):
            self.handle(rest, msgpack.unpackb(message.body, raw=False), offset)
        await message.ack()

    def handle(self, rest: str, body: dict[str, Any], offset: int) -> None:
        if body.get("type") == "audio":
            if rest == "in" and body["seq"] > self.audio_seq:
                with open(self.out, "ab") as f:
                    f.write(body["audio"])
                self.audio_seq = body["seq"]
        else:
            print(json.dumps({"offset": offset, "type": body["type"], "seq": body.get("seq")}), flush=True)
            if body["type"] == "session.ended":
                # A call whose bridge was lost (reason bridge_lost) has no counters: nothing more will come.
                self.expect_chunks = body["data"].get("counters", {}).get("chunks_out", 0)
        self.offset = offset
        self.save()
        if self.expect_chunks is not None and self.audio_seq + 1 >= self.expect_chunks:
            self.done.set()

    def save(self) -> None:
        if self.state is None:
            return
        size = self.out.stat().st_size if self.out.exists() else 0
        tmp = self.state.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(
                {
                    "offset": self.offset,
                    "audio_seq": self.audio_seq,
                    "out_bytes": size,
                    "expect_chunks": self.expect_chunks,
                }
            )
        )
        os.replace(tmp, self.state)  # atomic: a kill leaves the old state or the new one


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--amqp-url", default=os.environ.get("BRIDGE_AMQP_URL", "amqp://guest:guest@127.0.0.1/")
    )
    parser.add_argument("--prefix", default="rtvbp")
    parser.add_argument("--session", required=True, help="the session key (first word of the routing keys)")
    parser.add_argument("--since-ms", type=int, help="epoch ms of the call's session.started (ts)")
    parser.add_argument("--out", type=Path, required=True, help="file for the caller's audio")
    parser.add_argument("--state", type=Path, help="resume file: last offset handled")
    args = parser.parse_args()
    replay = CallReplay(args.session, args.out, args.state)
    connection = await aio_pika.connect_robust(args.amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=200)  # streams need a prefetch and manual acks
        queue = await channel.get_queue(f"{args.prefix}.replay", ensure=False)
        await queue.consume(replay.on_message, arguments={"x-stream-offset": replay.start_at(args.since_ms)})
        await replay.done.wait()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
