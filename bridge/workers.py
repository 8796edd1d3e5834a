"""`BRIDGE_WORKERS=N`: N independent bridge processes sharing one port (SO_REUSEPORT).

The kernel spreads new connections across the workers, so one pod uses all of its cores. Each worker is
a complete bridge (own broker connections, own instance id `<id>-w<k>`); nothing is shared, which is
also why this is safe: the cluster-wide session lock is the broker's exclusive queue. The parent only
forwards signals (a SIGTERM drains every worker) and exits with the worst worker exit code.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import multiprocessing
import os
import signal
import sys
from types import FrameType

from bridge.config import Settings
from bridge.logs import setup_logging
from bridge.loop import run as run_loop

log = logging.getLogger("bridge.workers")

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Linux: have the kernel SIGTERM this worker when the parent dies (even by SIGKILL): no orphans
    keeping the port and broker connections. Elsewhere this is a no-op."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return


def _worker(settings: Settings, index: int, parent_pid: int) -> None:
    _die_with_parent()
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        return
    from bridge.service import serve

    setup_logging(settings.log_level, settings.log_format)
    worker_settings = settings.model_copy(update={"instance_id": f"{settings.instance_id}-w{index}"})
    with contextlib.suppress(KeyboardInterrupt):
        run_loop(serve(worker_settings), settings.event_loop)


def run_workers(settings: Settings) -> int:
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(
            target=_worker, args=(settings, index, os.getpid()), name=f"rtvbp-bridge-w{index}", daemon=False
        )
        for index in range(settings.workers)
    ]
    for process in processes:
        process.start()
    log.info("started %d workers on port %d", len(processes), settings.port)

    def forward(signum: int, _: FrameType | None) -> None:
        for process in processes:
            if process.is_alive() and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for process in processes:
        process.join()
    codes = [process.exitcode or 0 for process in processes]
    return max(codes, key=abs) if codes else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run through `rtvbp-bridge serve` with BRIDGE_WORKERS")
