"""Run the benchmark curve: the bridge and the I/O floor, interleaved, same machine, same run.

    python -m bench.run --quick      # ~ 2 min: N = 10, 40 for 8 s each
    python -m bench.run --full       # the curve, 20 s per point, plus the 20 ms chunk comparison

Writes `docs/benchmarks.md` and `bench/results/latest.json`. Every figure is a ratio against the floor
measured minutes apart on the same box, because absolute times on shared VMs drift. Each point also runs
the bridge with BRIDGE_REPLAY=true ("replay"), to put a number on what the replay stream costs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import agent_cost
from bench.common import PROMPT_FLAG, find_pid, percentile, proc_sample

ROOT = Path(__file__).resolve().parents[1]
AMQP_URL = os.environ.get("BRIDGE_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
WARMUP_S = 2.5  # CPU window excludes start-up and teardown


@dataclass
class Point:
    mode: str
    calls: int
    chunk_ms: int
    duration_s: float
    repeat: int = 0
    cpu_ms_per_call_s: float = 0.0
    agent_ms_per_call_s: float = 0.0
    broker_ms_per_call_s: float = 0.0
    loadgen_ms_per_call_s: float = 0.0
    rss_kib_per_call: float = 0.0
    stream_bytes_per_call_s: float = 0.0  # replay mode: disk the replay stream grew by
    upstream_ms: dict[str, float] = field(default_factory=dict)
    downstream_ms: dict[str, float] = field(default_factory=dict)
    barge_in_ms: dict[str, float] = field(default_factory=dict)
    gen_lag_ms: dict[str, float] = field(default_factory=dict)
    lost_up: int = 0
    dup_up: int = 0
    lost_down: int = 0
    dup_down: int = 0
    reordered_down: int = 0
    frames_sent: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (
            self.lost_up
            or self.dup_up
            or self.lost_down
            or self.dup_down
            or self.reordered_down
            or self.errors
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stats(values: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    return {
        "p50": round(percentile(ms, 50), 2),
        "p99": round(percentile(ms, 99), 2),
        "max": round(max(ms, default=float("nan")), 2),
        "n": len(ms),
    }


def wait_line(process: subprocess.Popen[str], prefix: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith(prefix):
            return line.strip()
        if not line and process.poll() is not None:
            break
    raise RuntimeError(f"{process.args} did not say {prefix!r}")


def wait_ready(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("bridge not ready")


def start_server(
    mode: str, port: int, prefix: str, chunk_ms: int, workers: int, loop: str
) -> subprocess.Popen[str]:
    py = sys.executable
    if mode == "floor":
        cmd = [py, "-m", "bench.floor", "--port", str(port), "--prefix", prefix, "--chunk-ms", str(chunk_ms)]
        cmd += ["--loop", loop]
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        wait_line(proc, "ready", 20)
        return proc
    env = {
        **os.environ,
        "BRIDGE_PORT": str(port),
        "BRIDGE_EXCHANGE_PREFIX": prefix,
        "BRIDGE_MAX_SESSIONS": "1000",
        "BRIDGE_AUDIO_CHUNK_MS": str(chunk_ms),
        "BRIDGE_LOG_LEVEL": "WARNING",
        "BRIDGE_WORKERS": str(workers),
        "BRIDGE_AUDIO_BACKLOG_MS": "60000",
        "OTEL_SDK_DISABLED": "true",
        "BRIDGE_EVENT_LOOP": loop,
        "BRIDGE_REPLAY": "true" if mode == "replay" else "false",
    }
    log = open(Path(tempfile.gettempdir()) / f"{prefix}-bridge.log", "w")  # noqa: SIM115 (lives with the process)
    proc = subprocess.Popen(
        [py, "-m", "bridge.cli", "serve"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    wait_ready(port)
    return proc


def run_point(
    mode: str, calls: int, duration: float, chunk_ms: int, workdir: Path, workers: int = 1, loop: str = "auto"
) -> Point:
    point = Point(mode, calls, chunk_ms, duration)
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    port = free_port()
    server = start_server(mode, port, prefix, chunk_ms, workers, loop)
    agent_out, gen_out = workdir / f"{prefix}-agent.json", workdir / f"{prefix}-gen.json"
    agent = subprocess.Popen(
        [sys.executable, "-m", "bench.agent", "--prefix", prefix, "--out", str(agent_out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        wait_line(agent, "ready", 20)
        time.sleep(0.5)
        idle = proc_sample(server.pid)
        gen = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.loadgen",
                "--mode",
                "floor" if mode == "floor" else "bridge",
                "--port",
                str(port),
                "--calls",
                str(calls),
                "--duration",
                str(duration),
                "--run-id",
                prefix,
                "--out",
                str(gen_out),
            ],
            cwd=ROOT,
        )
        broker_pid = find_pid("beam.smp")
        # loadgen starts sending about 2 s + N*10 ms after launch
        first_frame = time.monotonic() + 2.0 + calls * 0.01 + 0.3
        time.sleep(max(0.0, first_frame + WARMUP_S - time.monotonic()))
        samples_a = [proc_sample(p) if p else None for p in (server.pid, agent.pid, broker_pid, gen.pid)]
        t_a = time.monotonic()
        window_end = first_frame + duration - WARMUP_S
        mid = (t_a + window_end) / 2
        time.sleep(max(0.0, mid - time.monotonic()))
        rss_mid = proc_sample(server.pid).rss_bytes
        time.sleep(max(0.0, window_end - time.monotonic()))
        samples_b = [proc_sample(p) if p else None for p in (server.pid, agent.pid, broker_pid, gen.pid)]
        window = time.monotonic() - t_a
        costs = []
        for a, b in zip(samples_a, samples_b, strict=True):
            costs.append((b.cpu_s - a.cpu_s) * 1000 / (calls * window) if a and b else float("nan"))
        (
            point.cpu_ms_per_call_s,
            point.agent_ms_per_call_s,
            point.broker_ms_per_call_s,
            point.loadgen_ms_per_call_s,
        ) = (round(c, 2) for c in costs)
        point.rss_kib_per_call = round((rss_mid - idle.rss_bytes) / 1024 / calls, 1)
        gen.wait(duration + 120)
        time.sleep(0.5)
        if mode == "replay":
            point.stream_bytes_per_call_s = round(stream_disk_bytes(f"{prefix}.replay") / (calls * duration))
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(30)
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        asyncio.run(_cleanup(prefix))
    analyse(point, json.loads(gen_out.read_text()), json.loads(agent_out.read_text()))
    return point


def analyse(point: Point, gen: dict[str, Any], agent: dict[str, Any]) -> None:
    calls = gen["calls"]
    point.errors = gen["errors"]
    point.gen_lag_ms = {k: round(v, 2) for k, v in gen["lateness_ms"].items()}
    point.frames_sent = sum(len(c["sends"]) for c in calls)
    upstream = [recv - calls[call]["sends"][seq] for recv, call, seq in agent["upstream"]]
    point.upstream_ms = stats(upstream)
    point.lost_up = agent["lost"] + (point.frames_sent - agent["frames_expected"])
    point.dup_up = agent["duplicated"]
    arrivals = [dict((seq, t) for seq, t in c["echo"]) for c in calls]
    point.downstream_ms = stats(
        [arrivals[call][seq] - pub for pub, call, seq in agent["published"] if seq in arrivals[call]]
    )
    probed = {call for _, call in agent["clears"]}
    silences = []
    for cleared, call in agent["clears"]:
        prompt = calls[call]["prompt"]
        if not any(t < cleared for t in prompt):
            point.errors.append(f"call {call}: no prompt audio played before the barge-in")
            continue
        silences.append(max([t for t in prompt if t >= cleared] or [cleared]) - cleared)
    point.barge_in_ms = stats(silences)
    for index, c in enumerate(calls):
        if index in probed or index % 10 == 0:
            continue  # barge-in probes clear echo audio on purpose
        seqs = [seq for seq, _ in c["echo"] if not seq & PROMPT_FLAG]
        point.dup_down += len(seqs) - len(set(seqs))
        point.reordered_down += sum(1 for a, b in itertools.pairwise(seqs) if b < a)
        point.lost_down += len(c["sends"]) - len(set(seqs))


def stream_disk_bytes(queue: str) -> int:
    """Bytes a stream queue holds on disk (the broker runs on this machine, as for its CPU figures)."""
    out = subprocess.run(
        ["rabbitmqctl", "-q", "eval", "application:get_env(osiris, data_dir)."],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    data_dir = Path(out.split('"')[1]) if '"' in out else None
    if data_dir is None:
        return 0
    # The broker names the directory __<queue>_<timestamp>, with the dots of the name turned into "_".
    pattern = "__" + re.sub(r"[^A-Za-z0-9_-]", "_", queue) + "_*"
    return sum(f.stat().st_size for d in data_dir.glob(pattern) for f in d.rglob("*") if f.is_file())


async def _cleanup(prefix: str) -> None:
    import aio_pika

    conn = await aio_pika.connect(AMQP_URL)
    for name in ("events", "audio", "commands", "unroutable"):
        channel = await conn.channel()
        with contextlib.suppress(Exception):
            await channel.exchange_delete(f"{prefix}.{name}")
    for name in ("unroutable", "unroutable.responder", "ledger", "replay"):
        channel = await conn.channel()
        with contextlib.suppress(Exception):
            await channel.queue_delete(f"{prefix}.{name}")
    await conn.close()


def versions() -> dict[str, str]:
    import importlib.metadata as md

    info = {"python": platform.python_version()}
    for pkg in ("websockets", "aio-pika", "aiormq", "msgpack", "uvloop"):
        try:
            info[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            info[pkg] = "-"
    try:
        out = subprocess.run(["rabbitmqctl", "-q", "version"], capture_output=True, text=True, timeout=20)
        info["rabbitmq"] = out.stdout.strip() or "?"
    except (OSError, subprocess.TimeoutExpired):
        info["rabbitmq"] = "?"
    return info


def machine() -> str:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 // 1024
    except OSError:
        mem = 0
    return f"{os.cpu_count()} vCPU ({model}), {mem} GiB RAM, {platform.system()} {platform.release()}"


def pairs(points: list[Point]) -> list[tuple[Point, Point]]:
    """(floor, bridge) measured back to back: same N, chunk and repeat."""
    floors = {(p.calls, p.chunk_ms, p.repeat): p for p in points if p.mode == "floor"}
    return [
        (floors[(p.calls, p.chunk_ms, p.repeat)], p)
        for p in points
        if p.mode == "bridge" and (p.calls, p.chunk_ms, p.repeat) in floors
    ]


def ratio(floor: Point, bridge: Point) -> float:
    return bridge.cpu_ms_per_call_s / floor.cpu_ms_per_call_s if floor.cpu_ms_per_call_s else float("nan")


def representative(points: list[Point]) -> list[tuple[Point, Point, list[float]]]:
    """Per (N, chunk): the repeat with the median ratio, and all the repeats' ratios (sorted)."""
    groups: dict[tuple[int, int], list[tuple[Point, Point]]] = {}
    for floor, bridge in pairs(points):
        groups.setdefault((bridge.calls, bridge.chunk_ms), []).append((floor, bridge))
    chosen = []
    for runs in groups.values():
        runs.sort(key=lambda fb: ratio(*fb))
        floor, bridge = runs[(len(runs) - 1) // 2]
        chosen.append((floor, bridge, [ratio(f, b) for f, b in runs]))
    return chosen


def table(points: list[Point]) -> str:
    rows = [
        "| N | chunk | floor ms/call-s | bridge ms/call-s | **ratio** (repeats) | bridge KiB/call "
        "| upstream p50/p99/max ms | p99 over floor ms | downstream p50/p99 ms | barge-in p50/p99 ms "
        "| loss/dup/reorder | gen lag p99 ms | agent / broker ms/call-s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f, p, ratios in representative(points):
        u, d, b = p.upstream_ms, p.downstream_ms, p.barge_in_ms
        loss = f"{p.lost_up + p.lost_down}/{p.dup_up + p.dup_down}/{p.reordered_down}"
        if p.errors:
            loss += f" ({len(p.errors)} errors)"
        spread = f" ({'/'.join(f'{r:.2f}' for r in ratios)})" if len(ratios) > 1 else ""
        rows.append(
            f"| {p.calls} | {p.chunk_ms} ms | {f.cpu_ms_per_call_s} | {p.cpu_ms_per_call_s} | "
            f"**{ratio(f, p):.2f}**{spread} | {p.rss_kib_per_call} | {u['p50']}/{u['p99']}/{u['max']} | "
            f"{u['p99'] - f.upstream_ms['p99']:+.1f} | {d['p50']}/{d['p99']} | "
            f"{b['p50']}/{b['p99']} | {loss} | {p.gen_lag_ms.get('p99')} | {p.agent_ms_per_call_s} / "
            f"{p.broker_ms_per_call_s} |"
        )
    return "\n".join(rows)


def agent_table(costs: list[dict[str, Any]]) -> str:
    """The consumer library's echo agent beside the raw aio-pika one, per repeat, and the median ratio."""
    rows = [
        "| N | raw agent ms/call-s | library agent ms/call-s | **library ÷ raw** "
        "| frames echoed raw · library |",
        "|---|---|---|---|---|",
    ]
    for c in costs:
        rows.append(
            f"| {c['calls']} | {c['raw_ms_per_call_s']} | {c['lib_ms_per_call_s']} | **{c['ratio']:.2f}** | "
            f"{c['raw_frames']} · {c['lib_frames']} |"
        )
    ratios = sorted(r for c in costs if (r := c["ratio"]) == r)  # NaN (a dead agent) left out
    if ratios:
        rows.append(f"\nMedian library ÷ raw agent CPU: **{ratios[(len(ratios) - 1) // 2]:.2f}**")
    return "\n".join(rows)


def floor_table(points: list[Point]) -> str:
    rows = [
        "| N | chunk | floor upstream p50/p99 ms | floor downstream p50/p99 ms | floor barge-in p99 ms | "
        "floor loss/dup/reorder | floor KiB/call | gen lag p99 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p, _, _ in representative(points):
        u, d = p.upstream_ms, p.downstream_ms
        rows.append(
            f"| {p.calls} | {p.chunk_ms} ms | {u['p50']}/{u['p99']} | {d['p50']}/{d['p99']} | "
            f"{p.barge_in_ms['p99']} | {p.lost_up + p.lost_down}/{p.dup_up + p.dup_down}/"
            f"{p.reordered_down} | {p.rss_kib_per_call} | {p.gen_lag_ms.get('p99')} |"
        )
    return "\n".join(rows)


def replay_table(points: list[Point]) -> str:
    """The same N with and without the replay stream, measured back to back in this run."""
    rows = [
        "| N | chunk | bridge ms/call-s without / with replay | **ratio** | broker ms/call-s without / with "
        "| **broker ratio** | upstream p99 ms without / with | stream disk KiB per call-second |",
        "|---|---|---|---|---|---|---|---|",
    ]
    plain = {(p.calls, p.chunk_ms, p.repeat): p for p in points if p.mode == "bridge"}
    for r in points:
        p = plain.get((r.calls, r.chunk_ms, r.repeat))
        if r.mode != "replay" or p is None:
            continue
        cpu = r.cpu_ms_per_call_s / p.cpu_ms_per_call_s if p.cpu_ms_per_call_s else float("nan")
        broker = r.broker_ms_per_call_s / p.broker_ms_per_call_s if p.broker_ms_per_call_s else float("nan")
        rows.append(
            f"| {r.calls} | {r.chunk_ms} ms | {p.cpu_ms_per_call_s} / {r.cpu_ms_per_call_s} | "
            f"**{cpu:.2f}** | "
            f"{p.broker_ms_per_call_s} / {r.broker_ms_per_call_s} | **{broker:.2f}** | "
            f"{p.upstream_ms['p99']} / {r.upstream_ms['p99']} | {r.stream_bytes_per_call_s / 1024:.1f} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true")
    mode.add_argument("--full", action="store_true")
    parser.add_argument("--calls", type=str, help="comma-separated N values (overrides the mode's curve)")
    parser.add_argument("--duration", type=float)
    parser.add_argument("--chunk-ms", type=int, default=100)
    parser.add_argument(
        "--loop",
        choices=["auto", "asyncio", "uvloop"],
        default="auto",
        help="event loop of both servers (auto: uvloop when installed, like the bridge)",
    )
    parser.add_argument(
        "--repeat", type=int, help="floor/bridge pairs per point; the table shows the median ratio"
    )
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md")
    parser.add_argument(
        "--agent-calls",
        type=int,
        default=100,
        help="N for the library-vs-raw echo agent comparison (0: skip)",
    )
    parser.add_argument("--agents-only", action="store_true", help="only the agent comparison")
    args = parser.parse_args()
    full = args.full
    curve = (
        [int(n) for n in args.calls.split(",")]
        if args.calls
        else ([10, 25, 50, 75, 100, 150] if full else [10, 40])
    )
    duration = args.duration or (12.0 if full else 8.0)
    repeats = args.repeat or (3 if full else 1)
    plan = [] if args.agents_only else [(n, args.chunk_ms) for n in curve]
    if full and not args.agents_only:
        plan += [(10, 20), (20, 20)]  # the chunk-size trade-off
    points: list[Point] = []
    costs: list[dict[str, Any]] = []
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for calls, chunk in plan:
            for repeat, m in itertools.product(range(repeats), ("floor", "bridge", "replay")):
                point = run_point(m, calls, duration, chunk, Path(tmp), loop=args.loop)
                point.repeat = repeat
                points.append(point)
                print(
                    f"{m:6} N={calls:<4} chunk={chunk}ms #{repeat} cpu={point.cpu_ms_per_call_s} ms/call-s "
                    f"up p99={point.upstream_ms['p99']} down p99={point.downstream_ms['p99']} "
                    f"barge p99={point.barge_in_ms['p99']} loss={point.lost_up + point.lost_down} "
                    f"gen p99={point.gen_lag_ms.get('p99')} errors={len(point.errors)}",
                    flush=True,
                )
        # The consumer library's cost: its echo agent beside the raw one, same load, same moment.
        agent_repeats = (args.repeat or (3 if full else 2)) if args.agent_calls else 0
        for _ in range(agent_repeats):
            cost = agent_cost.measure(AMQP_URL, args.agent_calls, duration, Path(tmp))
            costs.append(cost)
            print(
                f"agents N={args.agent_calls} raw={cost['raw_ms_per_call_s']} "
                f"lib={cost['lib_ms_per_call_s']} ms/call-s ratio={cost['ratio']} "
                f"frames={cost['raw_frames']}/{cost['lib_frames']}",
                flush=True,
            )
    command = "python -m bench.run " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    result = {
        "command": command,
        "machine": machine(),
        "versions": versions(),
        "started": started,
        "elapsed_s": round(time.time() - started, 1),
        "points": [asdict(p) for p in points],
        "agent_cost": costs,
    }
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    name = ("full" if full else "quick") + ("" if not args.no_docs else "-scratch")
    (out / f"{name}.json").write_text(json.dumps(result, indent=1))
    print()
    print(table(points))
    print()
    print(replay_table(points))
    print(agent_table(costs))
    if not args.no_docs:
        write_docs(result, points, costs, full)


def write_docs(result: dict[str, Any], points: list[Point], costs: list[dict[str, Any]], full: bool) -> None:
    path = ROOT / "docs" / "benchmarks.md"
    section = "full" if full else "quick"
    body = (
        f"<!-- {section}:start -->\n### {'Full curve' if full else 'Quick run'}\n\n"
        f"Command: `{result['command']}` (took {result['elapsed_s']} s)  \n"
        f"Machine: {result['machine']}  \n"
        f"Versions: {', '.join(f'{k} {v}' for k, v in result['versions'].items())}\n\n"
        f"{table(points)}\n\nThe floor, measured in the same run:\n\n{floor_table(points)}\n\n"
        f"The bridge with `BRIDGE_REPLAY=true`, against the bridge without it, in the same run:\n\n"
        f"{replay_table(points)}\n"
        f"\n"
        f"The consumer library's echo agent (`bench/lib_agent.py`) beside the raw aio-pika one "
        f"(`bench/agent.py`), both on the same synthetic calls at once (`bench/agent_cost.py`):\n\n"
        f"{agent_table(costs)}\n"
        f"<!-- {section}:end -->"
    )
    text = path.read_text() if path.exists() else ""
    start, end = f"<!-- {section}:start -->", f"<!-- {section}:end -->"
    if start in text and end in text:
        text = text[: text.index(start)] + body + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + body + "\n"
    path.write_text(text)


if __name__ == "__main__":
    main()
