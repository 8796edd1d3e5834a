"""`rtvbp-bridge simulate`: call a bridge the way telephony does, without a telephony account.

One call is: WebSocket upgrade (subprotocol `rtvbp.v1`, optional bearer token), `session.initialize` with
the configured codec offers, `session.updated`, caller audio streamed in real time (a WAV file converted
to the negotiated format, or a generated tone), DTMF digits at given times, answers to every request the
application makes as a real voice would (playout buffer, `audio.buffer.clear` with the bytes dropped,
session variables, recording ids, hang-up and move), and finally the caller hanging up (`call.hangup`
event, then `session.terminate`) unless the application ended the call first. `--calls N` places many
calls from one process and reports latency percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from pathlib import Path
from typing import Any, TextIO

from bridge.audio.format import AudioFormat
from bridge.protocol.codecs import CodecKey
from bridge.tools import loadgen
from bridge.tools.simulate import (
    DEFAULT_URL,
    Script,
    Target,
    print_timeline,
    save_recordings,
    summary_lines,
)
from bridge.tools.voicepeer import codec

EXAMPLES = """examples:
  rtvbp-bridge simulate --dtmf "1@1.0,#@2.0" --record-played played.wav --timeline
  rtvbp-bridge simulate ws://bridge:8080/ --token @token.txt --wav prompt.wav --offer L16/16000/1
  rtvbp-bridge simulate --calls 50 --ramp 10 --duration 30 --json > report.json
"""
DTMF_DIGITS = "0123456789*#ABCD"


def parse_offer(text: str) -> dict[str, Any]:
    # Any L16 id may be offered, even one the bridge will refuse: that is a case worth simulating.
    try:
        key = CodecKey.parse(text.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if key.name != "L16":
        raise argparse.ArgumentTypeError(f"{text!r}: the simulator offers L16 only")
    return codec(key.sample_rate, key.channels)


def parse_dtmf(text: str) -> tuple[tuple[str, float], ...]:
    presses: list[tuple[str, float]] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        digit, sep, at = item.partition("@")
        try:
            seconds = float(at)
        except ValueError:
            seconds = -1.0
        if not sep or len(digit) != 1 or digit.upper() not in DTMF_DIGITS or seconds < 0:
            raise argparse.ArgumentTypeError(
                f"{item!r} is not digit@seconds, e.g. 1@1.0 (digits 0-9 * # A-D)"
            )
        presses.append((digit.upper(), seconds))
    return tuple(presses)


def read_credential(value: str) -> str:
    """`@FILE` reads the credential from a file, which keeps it out of the process list."""
    if value.startswith("@"):
        return Path(value[1:]).read_text().strip()
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    target = parser.add_argument_group("target")
    target.add_argument(
        "url", nargs="?", default=DEFAULT_URL, help=f"the bridge's WebSocket URL (default {DEFAULT_URL})"
    )
    target.add_argument(
        "--token", help="static bearer token (BRIDGE_AUTH_MODE=token); @FILE reads it from a file"
    )
    target.add_argument("--jwt", help="a babelforce JWT (BRIDGE_AUTH_MODE=jwt); @FILE reads it from a file")
    target.add_argument(
        "--bearer-subprotocol",
        action="store_true",
        help="carry the token as a `bearer.<b64>` subprotocol like a browser (needs --origin) instead of "
        "an Authorization header",
    )
    target.add_argument("--origin", help="Origin header to send")
    call = parser.add_argument_group("the call")
    call.add_argument(
        "--session-id", help="call.session_id (default sim-<random>; -<n> is appended with --calls)"
    )
    call.add_argument(
        "--offer",
        action="append",
        type=parse_offer,
        metavar="L16/RATE/CH",
        help="codec to offer, repeatable, in order (default L16/8000/1)",
    )
    call.add_argument("--metadata", type=json.loads, help="session.initialize metadata as a JSON object")
    source = call.add_mutually_exclusive_group()
    source.add_argument("--wav", type=Path, help="caller audio from a WAV file (any rate/width/channels)")
    source.add_argument("--tone", type=float, metavar="HZ", help="caller audio: a sine tone (default 440 Hz)")
    call.add_argument("--duration", type=float, metavar="S", help="tone length (default 3 s) or WAV cut-off")
    call.add_argument("--dtmf", type=parse_dtmf, default=(), help='digits to press, e.g. "1@1.0,2@1.5,#@2.0"')
    call.add_argument(
        "--hangup-after",
        type=float,
        metavar="S",
        help="the caller hangs up after S seconds (default: when audio and digits are done + --tail)",
    )
    call.add_argument(
        "--tail", type=float, default=1.0, metavar="S", help="wait after the audio (default 1 s)"
    )
    call.add_argument(
        "--ping-interval", type=float, default=1.0, metavar="S", help="control pings (0 = none)"
    )
    call.add_argument(
        "--record-played", type=Path, metavar="FILE.wav", help="save what the application played"
    )
    call.add_argument("--record-sent", type=Path, metavar="FILE.wav", help="save what the caller sent")
    load = parser.add_argument_group("load")
    load.add_argument(
        "--calls", type=int, default=1, metavar="N", help="place N calls at once (load generator)"
    )
    load.add_argument(
        "--ramp", type=float, default=0.0, metavar="S", help="start the N calls evenly over S seconds"
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "--json", action="store_true", help="print a JSON report on stdout instead of the summary"
    )
    out.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    out.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="live progress line on stderr (default: on for --calls > 1 on a terminal)",
    )
    out.add_argument("--timeline", action="store_true", help="print the call's timeline after the summary")


def target_from_args(args: argparse.Namespace) -> Target:
    secret = args.jwt if args.jwt is not None else args.token
    return Target(
        url=args.url,
        token=read_credential(secret) if secret is not None else None,
        bearer_subprotocol=args.bearer_subprotocol,
        origin=args.origin,
    )


def script_from_args(args: argparse.Namespace) -> Script:
    return Script(
        offers=tuple(args.offer) if args.offer else (codec(8000),),
        wav=args.wav,
        tone_hz=args.tone if args.tone is not None else 440.0,
        duration_s=args.duration,
        dtmf=args.dtmf,
        hangup_after_s=args.hangup_after,
        tail_s=args.tail,
        ping_interval_s=args.ping_interval,
        metadata=args.metadata,
    )


def numbered(path: Path | None, index: int, calls: int) -> Path | None:
    """The recording path of call `index`: as given for one call, `<stem>-<n><suffix>` for several."""
    if path is None or calls == 1:
        return path
    return path.with_name(f"{path.stem}-{index + 1}{path.suffix}")


async def simulate(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Run `rtvbp-bridge simulate` with parsed arguments; the exit code (0 only when every call was ok)."""

    if args.calls < 1:
        print("simulate: --calls must be at least 1", file=err)
        return 2
    if args.bearer_subprotocol and not (args.token or args.jwt):
        print("simulate: --bearer-subprotocol needs --token or --jwt", file=err)
        return 2
    try:
        target, script = target_from_args(args), script_from_args(args)
        if script.wav is not None:
            for offer in script.offers:  # fail before dialling when the file cannot be read
                script.audio(AudioFormat(int(offer["sample_rate"]), int(offer["channels"])))
    except (OSError, ValueError) as exc:
        print(f"simulate: {exc}", file=err)
        return 2
    session_id = args.session_id or f"sim-{uuid.uuid4().hex[:8]}"
    keep_audio = args.record_played is not None or args.record_sent is not None
    show_progress = args.progress if args.progress is not None else (args.calls > 1 and err.isatty())
    report = await loadgen.run_load(
        target,
        script,
        args.calls,
        args.ramp,
        session_id,
        keep_audio=keep_audio,
        progress=err if show_progress and not args.quiet else None,
    )
    for index, result in enumerate(report.results):
        save_recordings(
            result,
            numbered(args.record_played, index, args.calls),
            numbered(args.record_sent, index, args.calls),
        )
    if args.json:
        print(json.dumps(report.to_json(target.url), indent=2), file=out)
    elif args.quiet:
        for result in report.results:
            if not result.ok:
                print(f"call {result.session_id}: {result.error}", file=err)
    elif args.calls == 1:
        print("\n".join(summary_lines(report.results[0], target.url, args.record_played)), file=out)
        if args.timeline:
            print_timeline(report.results[0], out)
    else:
        loadgen.print_report(report, target.url, out)
    return 0 if report.failed == 0 else 1


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(simulate(args))
    except KeyboardInterrupt:
        return 130
