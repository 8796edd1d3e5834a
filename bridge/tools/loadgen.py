"""`rtvbp-bridge simulate --calls N`: many simulated calls from one process, and their report.

One asyncio loop drives every call on absolute-time schedules, so a busy generator sends late rather
than drifting; how late is reported (`send lag`) so an overloaded generator is not mistaken for a slow
bridge. Python costs roughly a few percent of a core per real-time call: watch the send lag p99.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from bridge.tools.simulate import CallResult, Script, Target, run_call
from bridge.tools.voicepeer import VoicePeer


def percentiles(values: Sequence[float]) -> dict[str, float | int | None]:
    """count, p50, p95, p99 and max (nearest rank), rounded to 0.01; None for no values."""
    ordered = sorted(values)

    def rank(q: float) -> float | None:
        if not ordered:
            return None
        return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)], 2)

    return {"count": len(ordered), "p50": rank(0.5), "p95": rank(0.95), "p99": rank(0.99), "max": rank(1.0)}


@dataclass
class LoadReport:
    calls: int
    ramp_s: float
    wall_s: float = 0.0
    results: list[CallResult] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.results if not r.ok)

    def _values(self, name: str) -> list[float]:
        return [v for r in self.results if (v := getattr(r, name)) is not None]

    def to_json(self, url: str) -> dict[str, Any]:
        requests: Counter[str] = Counter()
        for result in self.results:
            requests.update(result.requests_answered)
        return {
            "target": url,
            "calls": self.calls,
            "ok": self.calls - self.failed,
            "failed": self.failed,
            "ramp_s": self.ramp_s,
            "wall_s": round(self.wall_s, 3),
            "latency_ms": {
                "connect": percentiles(self._values("connect_ms")),
                "initialize": percentiles(self._values("initialize_ms")),
                "ping_rtt": percentiles([v for r in self.results for v in r.ping_rtt_ms]),
            },
            "send_lag_ms": percentiles([v * 1000 for r in self.results for v in r.lateness_s]),
            "frames": {
                "sent": sum(r.frames_sent for r in self.results),
                "received": sum(r.frames_received for r in self.results),
            },
            "bytes": {
                "sent": sum(r.bytes_sent for r in self.results),
                "received": sum(r.bytes_received for r in self.results),
            },
            "requests_answered": dict(requests),
            "ended_by": dict(Counter(r.ended_by for r in self.results)),
            "errors": dict(Counter(r.error for r in self.results if r.error)),
            "results": [r.to_json() for r in self.results],
        }


@dataclass
class _Live:
    """What the progress line shows while calls run."""

    total: int
    started: int = 0
    done: int = 0
    failed: int = 0
    active: dict[int, tuple[VoicePeer, CallResult]] = field(default_factory=dict)  # by id(result)
    finished_frames: tuple[int, int] = (0, 0)

    def track(self, peer: VoicePeer, result: CallResult) -> None:
        self.active[id(result)] = (peer, result)

    def finish(self, result: CallResult) -> None:
        self.active.pop(id(result), None)
        sent, received = self.finished_frames
        self.finished_frames = (sent + result.frames_sent, received + result.frames_received)
        self.done += 1
        self.failed += 0 if result.ok else 1

    def frames(self) -> tuple[int, int]:
        sent = self.finished_frames[0] + sum(len(r.lateness_s) for _, r in self.active.values())
        received = self.finished_frames[1] + sum(len(p.played.frames) for p, _ in self.active.values())
        return sent, received

    def lag_p99_ms(self) -> float:
        recent = [v * 1000 for _, r in self.active.values() for v in r.lateness_s[-50:]]
        return float(percentiles(recent)["p99"] or 0.0)


async def run_load(
    target: Target,
    script: Script,
    calls: int,
    ramp_s: float,
    session_prefix: str,
    *,
    keep_audio: bool = False,
    progress: TextIO | None = None,
) -> LoadReport:
    """Place `calls` calls, started evenly over `ramp_s` seconds; one call uses `session_prefix` as its id."""
    report = LoadReport(calls=calls, ramp_s=ramp_s)
    live = _Live(total=calls)
    began = time.monotonic()

    async def one(index: int) -> CallResult:
        offset = ramp_s * index / (calls - 1) if calls > 1 else 0.0
        await asyncio.sleep(max(0.0, began + offset - time.monotonic()))
        live.started += 1
        session_id = session_prefix if calls == 1 else f"{session_prefix}-{index + 1}"
        result = await run_call(target, script, session_id, keep_audio=keep_audio, on_peer=live.track)
        live.finish(result)
        return result

    ticker = asyncio.create_task(_show_progress(live, began, progress)) if progress is not None else None
    try:
        report.results = list(await asyncio.gather(*(one(i) for i in range(calls))))
    finally:
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
    report.wall_s = time.monotonic() - began
    return report


async def _show_progress(live: _Live, began: float, out: TextIO) -> None:
    """One status line per second: rewritten in place on a terminal, appended every 5 s otherwise."""
    tty = out.isatty()
    tick = 0
    try:
        while True:
            await asyncio.sleep(1.0)
            tick += 1
            if not tty and tick % 5:
                continue
            sent, received = live.frames()
            line = (
                f"[{time.monotonic() - began:6.1f} s] calls {live.started}/{live.total} started, "
                f"{live.started - live.done} active, {live.done} done, {live.failed} failed | "
                f"frames sent {sent} received {received} | send lag p99 {live.lag_p99_ms():.1f} ms"
            )
            print(f"\r{line}" if tty else line, end="" if tty else "\n", file=out, flush=True)
    finally:
        if tty:
            print(file=out, flush=True)


def _fmt(stats: dict[str, float | int | None], unit: str = "ms") -> str:
    if not stats["count"]:
        return "no samples"
    return "  ".join(f"{key} {stats[key]} {unit}" for key in ("p50", "p95", "p99", "max"))


def print_report(report: LoadReport, url: str, out: TextIO) -> None:
    data = report.to_json(url)
    print(
        f"{report.calls} calls -> {url}: {data['ok']} ok, {data['failed']} failed "
        f"(ramp {report.ramp_s:g} s, wall {report.wall_s:.1f} s)",
        file=out,
    )
    latency = data["latency_ms"]
    print(f"  connect      {_fmt(latency['connect'])}", file=out)
    print(f"  initialize   {_fmt(latency['initialize'])}", file=out)
    print(f"  ping rtt     {_fmt(latency['ping_rtt'])}", file=out)
    print(
        f"  send lag     {_fmt(data['send_lag_ms'])}  (the generator's own lateness: high = generator "
        "overloaded, not the bridge)",
        file=out,
    )
    print(f"  frames       sent {data['frames']['sent']}, received {data['frames']['received']}", file=out)
    answered = ", ".join(f"{m} x{n}" for m, n in sorted(data["requests_answered"].items())) or "none"
    print(f"  requests     {answered}", file=out)
    print(f"  ended by     {', '.join(f'{k}: {v}' for k, v in sorted(data['ended_by'].items()))}", file=out)
    errors = data["errors"]
    print(f"  errors       {'none' if not errors else ''}", file=out)
    for message, count in sorted(errors.items(), key=lambda item: -item[1]):
        print(f"    {count:5d} x {message}", file=out)
