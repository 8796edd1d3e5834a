"""`make demo`: one simulated phone call through a real bridge to the example echo agent, explained.

Starts whatever is missing (RabbitMQ, a bridge, the echo agent from `examples/`), watches the bus with
a tap, places a call with the simulator (a 440 Hz tone and the digits 1, 2, #), prints the event
timeline as a consumer sees it and where the recorded WAV files are, then stops what it started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from bridge.audio.signal import dominant_frequency, rms
from bridge.audio.wav import read_wav_as_l16
from bridge.resources import EXAMPLES_DIR
from bridge.tools.simulate import (
    CallResult,
    Script,
    Target,
    print_timeline,
    run_call,
    save_recordings,
    summary_lines,
)
from bridge.tools.tap import Selection, Tap
from bridge.tools.tap_report import PrettyPrinter, SessionTrace

# Where `-m bridge...` imports from: the checkout, or site-packages when installed from a wheel.
IMPORT_ROOT = Path(__file__).resolve().parent.parent
TONE_HZ = 440.0
DIGITS = (("1", 0.6), ("2", 1.2), ("#", 2.4))
CANDIDATES = (220.0, 330.0, TONE_HZ, 550.0, 660.0, 880.0, 1000.0)


def say(text: str = "") -> None:
    print(text, flush=True)


def step(number: int, name: str, text: str) -> None:
    say(f"[{number}/5] {name:<10} {text}")


@dataclass
class Started:
    """Processes the demo started (and must stop), with their log files."""

    processes: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = field(default_factory=list)

    def spawn(
        self, name: str, argv: list[str], log: Path, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        handle = log.open("wb")
        process = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=IMPORT_ROOT)  # noqa: S603
        self.processes.append((name, process, handle))
        return process

    def stop(self) -> None:
        for _, process, _ in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for name, process, handle in reversed(self.processes):
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                say(f"  {name} did not stop within 5 s; killing it")
                process.kill()
                process.wait()
            handle.close()


# ---- checks ------------------------------------------------------------------------------------------------


def answers(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def free_port(preferred: int) -> int:
    """`preferred` when nothing listens there (0 = any), else a port the kernel picks."""
    for port in (preferred, 0) if preferred else (0,):
        with socket.socket() as sock:
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_REUSEADDR, 1
            )  # as servers do: TIME_WAIT is no conflict
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise RuntimeError("no free TCP port")


def wait_until(
    check: Callable[[], bool], timeout: float, process: subprocess.Popen[bytes] | None = None
) -> bool:
    """Poll `check` until it holds; give up early when `process` has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        if process is not None and process.poll() is not None:
            return False
        time.sleep(0.1)
    return False


def tail(path: Path, lines: int = 15) -> Iterator[str]:
    with contextlib.suppress(OSError):
        yield from path.read_text(errors="replace").splitlines()[-lines:]


# ---- the steps ---------------------------------------------------------------------------------------------


def ensure_broker(amqp_url: str) -> bool:
    parts = urlsplit(amqp_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5672
    if answers(host, port):
        step(1, "RabbitMQ", f"answers on {host}:{port}")
        return True
    script = IMPORT_ROOT / "scripts" / "ensure-rabbitmq.sh"  # a convenience of checkouts only
    if host not in ("127.0.0.1", "localhost") or not script.exists():
        step(1, "RabbitMQ", f"nothing answers on {host}:{port}: start a broker (or set BRIDGE_AMQP_URL)")
        return False
    step(1, "RabbitMQ", "not running: starting it with scripts/ensure-rabbitmq.sh (takes ~10 s)")
    subprocess.run([str(script)], check=False)  # noqa: S603
    return answers(host, port)


def ensure_bridge(args: argparse.Namespace, started: Started) -> int | None:
    """The port of a ready bridge: the one on --port when it is ready and reuse is allowed, else our own."""
    if args.port and not args.no_reuse and ready(args.port):
        step(
            2,
            "bridge",
            f"reusing the bridge that is ready on port {args.port} (assuming exchange prefix "
            f"{args.prefix!r}; it may not mirror played audio)",
        )
        return int(args.port)
    port = free_port(args.port)
    log = args.out / "bridge.log"
    env = dict(
        os.environ,
        BRIDGE_HOST="127.0.0.1",
        BRIDGE_PORT=str(port),
        BRIDGE_EXCHANGE_PREFIX=args.prefix,
        BRIDGE_AMQP_URL=args.amqp_url,
        BRIDGE_MIRROR_OUT="true",
        BRIDGE_AUTH_MODE="none",
        BRIDGE_INSTANCE_ID="demo",
        BRIDGE_DRAIN_TIMEOUT_S="1",
    )
    process = started.spawn("bridge", [sys.executable, "-m", "bridge.cli", "serve"], log, env)
    if not wait_until(lambda: ready(port), 20, process):
        step(2, "bridge", f"did not become ready; the end of {log}:")
        for line in tail(log):
            say(f"    {line}")
        return None
    step(
        2,
        "bridge",
        f"started `rtvbp-bridge serve` on ws://127.0.0.1:{port}/ with played-audio mirroring (log: {log})",
    )
    return port


def start_agent(args: argparse.Namespace, started: Started) -> bool:
    script = EXAMPLES_DIR / "echo_agent.py"
    log = args.out / "echo-agent.log"
    process = started.spawn(
        "echo agent", [sys.executable, str(script), "--amqp-url", args.amqp_url, "--prefix", args.prefix], log
    )
    if not wait_until(lambda: "ready" in "".join(tail(log, 50)), 15, process):
        step(3, "agent", f"the echo agent did not start; the end of {log}:")
        for line in tail(log):
            say(f"    {line}")
        return False
    step(3, "agent", "started examples/echo_agent.py: it plays the caller's audio back 0.5 s later and")
    say(f"{'':17}hangs up when the caller presses # (log: {log})")
    return True


async def call(args: argparse.Namespace, port: int) -> tuple[CallResult, SessionTrace | None]:
    session_id = f"demo-{uuid.uuid4().hex[:6]}"
    tap = Tap(
        args.amqp_url,
        args.prefix,
        Selection.session(session_id),
        args.out,
        PrettyPrinter(sys.stdout, relative=True, indent="  "),
    )
    await tap.start()
    step(4, "tap", f"listening on {args.prefix}.events and {args.prefix}.audio for session {session_id}")
    digits = ", ".join(f"{d} at {t:g} s" for d, t in DIGITS)
    step(5, "call", f"the simulator dials ws://127.0.0.1:{port}/ like telephony would and sends 3 s of a")
    say(f"{'':17}{TONE_HZ:g} Hz tone with the digits {digits}")
    say()
    say("Event timeline: what any consumer of the bus sees, live (seconds since the call started).")
    say("  session.started = the bridge accepted the call and chose the codec; dtmf = a key press;")
    say("  session.ended = the call is over (why, with counters); audio = the call's audio, summed up.")
    script = Script(tone_hz=TONE_HZ, duration_s=3.0, dtmf=DIGITS, tail_s=1.0)
    result = await run_call(Target(f"ws://127.0.0.1:{port}/"), script, session_id, keep_audio=True)
    trace: SessionTrace | None = None
    try:
        if result.codec is not None:  # the call really started: the bus must have seen it
            trace = (await tap.wait_sessions(1, timeout=5))[0]
    except TimeoutError:
        say(
            f"  (the tap saw no end of the call on {args.prefix}.events: a reused bridge with another "
            "BRIDGE_EXCHANGE_PREFIX? try --no-reuse)"
        )
    finally:
        await tap.stop()
    return result, trace


def report(args: argparse.Namespace, port: int, result: CallResult, trace: SessionTrace | None) -> None:
    played, sent = args.out / "played.wav", args.out / "caller.wav"
    save_recordings(result, played, sent)
    say()
    say("The call from the caller's side (the simulator):")
    for line in summary_lines(result, f"ws://127.0.0.1:{port}/"):
        say(f"  {line}")
    if result.timeline:
        print_timeline(result, sys.stdout)
    say()
    if result.codec is None:
        say("No WAV files: the call never got as far as audio.")
        return
    say(f"WAV files (in {args.out}/):")
    say(f"  {sent}  what the simulated caller sent: the {TONE_HZ:g} Hz tone")
    rate = int(result.codec.get("sample_rate", 8000))
    echo = read_wav_as_l16(played, rate)
    heard = ""
    if rms(echo) > 100:
        heard = f"; its strongest frequency is {dominant_frequency(echo, rate, CANDIDATES):g} Hz"
    say(f"  {played}  what the agent played back to the caller ({len(echo) / rate / 2:.1f} s){heard}")
    say(f"{'':4}(shorter than what was sent: the echo starts about 0.6 s late and # ends the call)")
    if trace is not None:
        for direction, meaning in (
            ("in", "caller audio as published on the bus"),
            ("out", "played audio as mirrored on the bus"),
        ):
            if direction in trace.wav:
                say(f"  {trace.wav[direction]}  {meaning} (written by the tap)")
    say()
    say("Next: read examples/README.md and docs/tools.md; try `rtvbp-bridge tap` in one terminal and")
    say("`rtvbp-bridge simulate --dtmf '1@0.5,#@2' --timeline` in another against `make run`.")


async def demo(args: argparse.Namespace) -> int:
    args.out.mkdir(parents=True, exist_ok=True)
    say("rtvbp-bridge demo: a simulated phone call through the bridge to an example agent (no telephony).")
    say()
    if not ensure_broker(args.amqp_url):
        return 1
    started = Started()
    ok = False
    try:
        port = ensure_bridge(args, started)
        reused = not started.processes
        if port is not None and start_agent(args, started):
            result, trace = await call(args, port)
            report(args, port, result, trace)
            ok = result.ok and trace is not None and result.frames_received > 0
            if not ok and reused:
                say("The demo used a bridge it did not start (it may require a token or use another exchange")
                say("prefix): run `python -m bridge.demo --no-reuse` to give it a bridge of its own.")
    finally:
        started.stop()
        if started.processes:
            say(f"Stopped what the demo started ({', '.join(name for name, _, _ in started.processes)}).")
    say("Demo finished: OK." if ok else "Demo finished with a problem: see the messages above.")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bridge.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--amqp-url", default=os.environ.get("BRIDGE_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    )
    parser.add_argument("--prefix", default=os.environ.get("BRIDGE_EXCHANGE_PREFIX", "rtvbp"))
    parser.add_argument(
        "--port",
        type=int,
        default=8080,
        help="reuse a ready bridge here, or start one here when the port is free (0 = any free port)",
    )
    parser.add_argument("--no-reuse", action="store_true", help="always start a bridge of our own")
    parser.add_argument("--out", type=Path, default=Path("out/demo"), help="where the WAV files and logs go")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(demo(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
