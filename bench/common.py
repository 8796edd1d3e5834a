"""Shared pieces of the benchmark: frame tags, process accounting, percentiles."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

FRAME_BYTES = 320  # 20 ms of L16/8000/1
FRAME_S = 0.020
TAG = struct.Struct("<II")  # (call index, frame seq) in the first 8 bytes of every frame
PROMPT_FLAG = 0x8000_0000  # seq bit marking frames of a barge-in probe prompt
CLK_TCK = os.sysconf("SC_CLK_TCK")


def frame(call: int, seq: int) -> bytes:
    return TAG.pack(call, seq) + bytes(FRAME_BYTES - TAG.size)


def tags(audio: bytes) -> list[tuple[int, int]]:
    return [TAG.unpack_from(audio, off) for off in range(0, len(audio) - TAG.size + 1, FRAME_BYTES)]


@dataclass(frozen=True)
class ProcSample:
    cpu_s: float  # user + system seconds
    rss_bytes: int


def proc_sample(pid: int, include_children: bool = True) -> ProcSample:
    """CPU (utime+stime) and RSS of `pid` and, optionally, its live child processes."""
    pids = [pid] + (children(pid) if include_children else [])
    cpu = 0.0
    rss = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / CLK_TCK
            with open(f"/proc/{p}/statm") as f:
                rss += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    return ProcSample(cpu, rss)


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def find_pid(name: str) -> int | None:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().strip() == name:
                        return int(entry)
            except OSError:
                continue
    return None


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]
