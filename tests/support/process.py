"""Run the real `rtvbp-bridge serve` as a subprocess, the way operators do."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


@dataclass
class BridgeProcess:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def http(self, path: str) -> int:
        return http_status(f"http://127.0.0.1:{self.port}{path}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    async def until_draining(self, timeout: float = 5.0) -> None:
        """Wait until the process has taken SIGTERM: its readiness says 503 (polled off the loop)."""
        deadline = time.monotonic() + timeout
        while await asyncio.to_thread(self.http, "/readyz") != 503:
            if time.monotonic() > deadline:
                raise AssertionError(f"not draining after {timeout:.0f} s:\n{self.log()}")
            await asyncio.sleep(0.02)


@contextmanager
def bridge_process(env: Mapping[str, str], tmp_path: Path, ready: bool = True) -> Iterator[BridgeProcess]:
    port = free_port()
    log_path = tmp_path / f"bridge-{port}.log"
    # A loaded test machine can keep the broker from confirming session.started within the production
    # 1.5 s budget; tests about that budget set it themselves.
    defaults = {"BRIDGE_HOST": "127.0.0.1", "BRIDGE_PORT": str(port), "BRIDGE_PUBLISH_TIMEOUT_S": "5"}
    full_env = {**os.environ, **defaults, **env}
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "bridge.cli", "serve"],
            env=full_env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: cleanup reaches worker processes too
        )
    handle = BridgeProcess(process, port, log_path)
    try:
        deadline = time.monotonic() + 20
        wanted = 200 if ready else 503
        while handle.http("/readyz") != wanted:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"bridge did not come up (exit {process.poll()}):\n{handle.log()}")
            time.sleep(0.1)
        yield handle
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
