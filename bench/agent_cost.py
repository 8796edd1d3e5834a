"""What the consumer library costs: its echo agent and the raw aio-pika one, side by side, same load.

Both agents (`bench/agent.py`, `bench/lib_agent.py`) run at the same time, each with its own queues, so
each receives every message of the same N synthetic calls (a `session.started`, then a 100 ms chunk of
tagged frames every 100 ms, then `session.ended`, published here exactly as the bridge publishes them)
and echoes every chunk as an `audio` command. The CPU of both processes is sampled over the same
window: whatever else the shared machine is doing hits both alike, and the ratio library ÷ raw is the
figure. No bridge is involved (its cost is the curve's business), and the echoes go to a commands
exchange that routes them nowhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aio_pika
import msgpack

from bench.common import FRAME_BYTES, frame, proc_sample

ROOT = Path(__file__).resolve().parents[1]
CHUNK_MS = 100
CODEC = {"id": "L16/8000/1", "name": "L16", "sample_rate": 8000, "bit_depth": 16, "channels": 1}


def _event(key: str, kind: str, seq: int, data: dict[str, Any]) -> bytes:
    body = {"type": kind, "session_id": key, "seq": seq, "ts": int(time.time() * 1000), "data": data}
    return msgpack.packb(body)


def _started(key: str, prefix: str) -> bytes:
    return _event(
        key,
        "session.started",
        0,
        {
            "call": {"id": key, "session_id": key},
            "application": {"id": "bench"},
            "audio_codec_offerings": [CODEC],
            "audio_codec": CODEC,
            "metadata": None,
            "instance": "bench",
            "commands": {"exchange": f"{prefix}.commands", "routing_key": key},
            "audio": {"exchange": f"{prefix}.audio", "routing_key": f"{key}.in", "chunk_ms": CHUNK_MS},
        },
    )


async def _publish_calls(url: str, prefix: str, calls: int, duration_s: float) -> None:
    connection = await aio_pika.connect(url)
    channel = await connection.channel(publisher_confirms=False)
    topic = aio_pika.ExchangeType.TOPIC
    events = await channel.declare_exchange(f"{prefix}.events", topic, durable=True)
    audio = await channel.declare_exchange(f"{prefix}.audio", topic, durable=True)
    keys = [f"cost-{i}" for i in range(calls)]
    for key in keys:
        message = aio_pika.Message(_started(key, prefix), type="session.started")
        await events.publish(message, f"{key}.session.started")
    frames_per_chunk = CHUNK_MS // 20
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.2
    chunks = int(duration_s * 1000 / CHUNK_MS)
    for seq in range(chunks):
        for index, key in enumerate(keys):
            due = start + seq * CHUNK_MS / 1000 + index * CHUNK_MS / 1000 / calls  # calls spread over a chunk
            await asyncio.sleep(max(0.0, due - loop.time()))
            pcm = b"".join(frame(index, seq * frames_per_chunk + n) for n in range(frames_per_chunk))
            body = {
                "type": "audio",
                "session_id": key,
                "direction": "in",
                "seq": seq,
                "ts": seq * CHUNK_MS,
                "codec": {**CODEC, "endianness": "little"},
                "audio": pcm,
            }
            await audio.publish(aio_pika.Message(msgpack.packb(body), type="audio"), f"{key}.in")
    for key in keys:
        counters = {"bytes_in": chunks * frames_per_chunk * FRAME_BYTES, "dropped_in_bytes": 0}
        ended = _event(key, "session.ended", 1, {"reason": "hangup", "duration_ms": 0, "counters": counters})
        await events.publish(aio_pika.Message(ended, type="session.ended"), f"{key}.session.ended")
    await connection.close()


async def _declare(url: str, prefix: str) -> None:
    connection = await aio_pika.connect(url)
    channel = await connection.channel()
    await channel.declare_exchange(f"{prefix}.commands", aio_pika.ExchangeType.DIRECT, durable=True)
    await connection.close()


async def _cleanup(url: str, prefix: str) -> None:
    connection = await aio_pika.connect(url)
    for name in ("events", "audio", "commands"):
        channel = await connection.channel()
        with contextlib.suppress(Exception):  # best effort
            await channel.exchange_delete(f"{prefix}.{name}")
    await connection.close()


def _start_agent(module: str, url: str, prefix: str, out: Path) -> subprocess.Popen[str]:
    agent = subprocess.Popen(
        [
            sys.executable,
            "-m",
            module,
            "--amqp-url",
            url,
            "--prefix",
            prefix,
            "--out",
            str(out),
            "--probe-after",
            "1e9",
        ],  # no barge-in probes: there is no bridge to answer a clear
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert agent.stdout is not None
    if agent.stdout.readline().strip() != "ready":
        raise RuntimeError(f"{module} did not start")
    return agent


def _when_idle(agents: dict[str, subprocess.Popen[str]], timeout: float = 30.0) -> dict[str, Any]:
    """CPU samples once no agent has used more than 10 ms of CPU in half a second (its backlog is done)."""
    deadline = time.monotonic() + timeout
    last = {kind: proc_sample(agent.pid) for kind, agent in agents.items()}
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = {kind: proc_sample(agent.pid) for kind, agent in agents.items()}
        if all(now[kind].cpu_s - last[kind].cpu_s < 0.010 for kind in agents):
            return now
        last = now
    raise RuntimeError("the agents never went idle")


def measure(url: str, calls: int, duration_s: float, workdir: Path) -> dict[str, Any]:
    """Both agents over the same load; CPU ms per call-second of each, frames each received."""
    import json

    prefix = f"cost-{uuid.uuid4().hex[:8]}"
    asyncio.run(_declare(url, prefix))
    outs = {kind: workdir / f"{prefix}-{kind}.json" for kind in ("raw", "lib")}
    agents = {
        "raw": _start_agent("bench.agent", url, prefix, outs["raw"]),
        "lib": _start_agent("bench.lib_agent", url, prefix, outs["lib"]),
    }
    try:
        # The whole run, start to drained, so both have done exactly the same work whatever the box
        # let each of them do when: CPU from before the first call until both are idle again.
        before = {kind: proc_sample(agent.pid) for kind, agent in agents.items()}
        publisher = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.agent_cost",
                "--publish",
                "--amqp-url",
                url,
                "--prefix",
                prefix,
                "--calls",
                str(calls),
                "--duration",
                str(duration_s),
            ],
            cwd=ROOT,
        )
        publisher.wait(duration_s + 60)
        after = _when_idle(agents)
    finally:
        for agent in agents.values():
            agent.send_signal(signal.SIGTERM)
        for agent in agents.values():
            agent.wait(30)
        asyncio.run(_cleanup(url, prefix))
    result: dict[str, Any] = {"calls": calls, "duration_s": duration_s}
    for kind in ("raw", "lib"):
        report = json.loads(outs[kind].read_text())
        cpu_ms = (after[kind].cpu_s - before[kind].cpu_s) * 1000
        result[f"{kind}_ms_per_call_s"] = round(cpu_ms / (calls * duration_s), 3)
        result[f"{kind}_frames"] = report["frames_expected"]
        result[f"{kind}_lost"] = report["lost"] + report["duplicated"]
    raw = result["raw_ms_per_call_s"]
    result["ratio"] = round(result["lib_ms_per_call_s"] / raw, 3) if raw else float("nan")
    return result


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--publish", action="store_true", help="(internal) be the synthetic bridge")
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--prefix", default="")
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args()
    if args.publish:
        asyncio.run(_publish_calls(args.amqp_url, args.prefix, args.calls, args.duration))
        return
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        print(measure(args.amqp_url, args.calls, args.duration, Path(tmp)))


if __name__ == "__main__":
    main()
