"""The benchmark's voice side: N calls sending tagged 20 ms frames on an absolute real-time schedule.

Every frame carries (call, seq) in its first bytes, so any frame that comes back can be matched to the
moment it was sent. The generator records its own send lateness: a late generator must never be
mistaken for a slow bridge.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from bench.common import FRAME_S, PROMPT_FLAG, TAG, frame, percentile

CODEC = {"id": "L16/8000/1", "name": "L16", "sample_rate": 8000, "bit_depth": 16, "channels": 1}


class Call:
    def __init__(self, index: int, args: argparse.Namespace) -> None:
        self.index = index
        self.args = args
        self.sends: list[float] = []
        self.lateness: list[float] = []
        self.echo: list[tuple[int, float]] = []
        self.prompt: list[float] = []
        self.requests = 0
        self.error = ""

    async def run(self, start: float) -> None:
        args = self.args
        session = f"bench-{args.run_id}-{self.index}"
        url = f"ws://127.0.0.1:{args.port}/" + (f"s/{session}" if args.mode == "floor" else "")
        try:
            async with connect(url, compression=None, max_size=2**20, open_timeout=30) as ws:
                if args.mode == "bridge":
                    await self.initialize(ws, session)
                reader = asyncio.create_task(self.read(ws))
                await self.send(ws, start)
                await asyncio.sleep(args.tail)
                if args.mode == "bridge":
                    await ws.send(
                        json.dumps(
                            {
                                "version": "1",
                                "id": "end",
                                "method": "session.terminate",
                                "params": {"reason": "completed"},
                            }
                        )
                    )
                    await asyncio.wait_for(reader, 5)
                reader.cancel()
        except Exception as exc:  # reported, never hidden
            self.error = f"{type(exc).__name__}: {exc}"

    async def initialize(self, ws: ClientConnection, session: str) -> None:
        params = {
            "application": {"id": "bench"},
            "call": {"id": session, "session_id": session, "from": "+1", "to": "+2"},
            "audio_codec_offerings": [CODEC],
            "metadata": None,
        }
        await ws.send(
            json.dumps({"version": "1", "id": "init", "method": "session.initialize", "params": params})
        )
        answer = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if "result" not in answer:
            raise RuntimeError(f"initialize refused: {answer}")
        await ws.send(
            json.dumps(
                {"version": "1", "id": "upd", "event": "session.updated", "data": {"audio_codec": CODEC}}
            )
        )

    async def send(self, ws: ClientConnection, start: float) -> None:
        frames = int(self.args.duration / FRAME_S)
        for seq in range(frames):
            due = start + seq * FRAME_S
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            now = time.monotonic()
            await ws.send(frame(self.index, seq))
            self.sends.append(now)
            self.lateness.append(now - due)

    async def read(self, ws: ClientConnection) -> None:
        async for message in ws:
            now = time.monotonic()
            if isinstance(message, bytes):
                _, seq = TAG.unpack_from(message)
                if seq & PROMPT_FLAG:
                    self.prompt.append(now)
                else:
                    self.echo.append((seq, now))
                continue
            msg = json.loads(message)
            if "method" in msg:  # answer the bridge's requests like a voice would
                self.requests += 1
                result: dict[str, Any] = {"len": 0} if msg["method"] == "audio.buffer.clear" else {}
                await ws.send(json.dumps({"version": "1", "response": msg["id"], "result": result}))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["bridge", "floor"], required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--tail", type=float, default=1.0)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    calls = [Call(i, args) for i in range(args.calls)]
    # phases spread evenly over one frame period; connections opened before the first frame is due
    start = time.monotonic() + 2.0 + args.calls * 0.01
    await asyncio.gather(*(c.run(start + (c.index % 20) * FRAME_S / 20) for c in calls))
    lateness = [x for c in calls for x in c.lateness]
    report = {
        "start": start,
        "lateness_ms": {
            "p50": percentile(lateness, 50) * 1000,
            "p99": percentile(lateness, 99) * 1000,
            "max": max(lateness, default=0) * 1000,
        },
        "errors": [c.error for c in calls if c.error],
        "calls": [{"sends": c.sends, "echo": c.echo, "prompt": c.prompt} for c in calls],
    }
    await asyncio.to_thread(Path(args.out).write_text, json.dumps(report))


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main())
