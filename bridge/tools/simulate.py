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
import contextlib
import json
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from websockets.exceptions import ConnectionClosed, InvalidStatus

from bridge.audio.format import AudioFormat
from bridge.audio.signal import tone
from bridge.audio.wav import read_wav_as_l16, write_wav
from bridge.protocol.codecs import CodecKey
from bridge.protocol.envelope import Event, Request, Response
from bridge.tools.voicepeer import RemoteError, VoicePeer, bearer_subprotocol, codec, now_ms

DEFAULT_URL = "ws://127.0.0.1:8080/"
EXAMPLES = """examples:
  rtvbp-bridge simulate --dtmf "1@1.0,#@2.0" --record-played played.wav --timeline
  rtvbp-bridge simulate ws://bridge:8080/ --token @token.txt --wav prompt.wav --offer L16/16000/1
  rtvbp-bridge simulate --calls 50 --ramp 10 --duration 30 --json > report.json
"""
DTMF_DIGITS = "0123456789*#ABCD"
GRACE_S = 20.0


# ---- what to call and what the caller does -----------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where the bridge is and how telephony authenticates to it."""

    url: str = DEFAULT_URL
    token: str | None = None  # static bearer token or JWT
    bearer_subprotocol: bool = False  # carry the token as `bearer.<b64>` subprotocol (browser style)
    origin: str | None = None

    def subprotocols(self) -> list[str]:
        protocols = ["rtvbp.v1"]
        if self.token is not None and self.bearer_subprotocol:
            protocols.append(bearer_subprotocol(self.token))
        return protocols

    def headers(self) -> dict[str, str] | None:
        if self.token is None or self.bearer_subprotocol:
            return None
        return {"Authorization": f"Bearer {self.token}"}


@dataclass(frozen=True)
class Script:
    """What the simulated caller does, on one clock that starts when the session is set up."""

    offers: tuple[dict[str, Any], ...] = (codec(8000),)
    wav: Path | None = None
    tone_hz: float = 440.0
    duration_s: float | None = None  # tone length (default 3 s) or a cut of the WAV file
    dtmf: tuple[tuple[str, float], ...] = ()  # (digit, seconds)
    hangup_after_s: float | None = None  # default: when audio and digits are done, plus the tail
    tail_s: float = 1.0
    ping_interval_s: float = 1.0  # voice->bridge pings measure the control round trip; 0 = none
    application_id: str = "simulator"
    metadata: dict[str, Any] | None = None
    _cache: dict[AudioFormat, bytes] = field(default_factory=dict, compare=False, repr=False)

    def audio(self, fmt: AudioFormat) -> bytes:
        """The caller's audio in the negotiated format (computed once per format, shared by all calls)."""
        if fmt not in self._cache:
            if self.wav is not None:
                pcm = read_wav_as_l16(self.wav, fmt.sample_rate, fmt.channels)
                if self.duration_s is not None:
                    pcm = pcm[: fmt.bytes_for_ms(int(self.duration_s * 1000))]
            else:
                mono = tone(self.tone_hz, int((self.duration_s or 3.0) * 1000), fmt.sample_rate)
                pcm = mono if fmt.channels == 1 else _duplicate_channels(mono, fmt.channels)
            self._cache[fmt] = pcm
        return self._cache[fmt]

    def hangup_at(self, audio_s: float) -> float:
        if self.hangup_after_s is not None:
            return self.hangup_after_s
        last_digit = max((at for _, at in self.dtmf), default=0.0)
        return max(audio_s, last_digit) + self.tail_s


def _duplicate_channels(mono: bytes, channels: int) -> bytes:
    return b"".join(mono[i : i + 2] * channels for i in range(0, len(mono), 2))


# ---- one call ----------------------------------------------------------------------------------------------


@dataclass
class CallResult:
    session_id: str
    ok: bool = False
    error: str | None = None
    codec: dict[str, Any] | None = None
    connect_ms: float | None = None
    initialize_ms: float | None = None
    frames_sent: int = 0
    bytes_sent: int = 0
    frames_received: int = 0
    bytes_received: int = 0
    dtmf_sent: list[str] = field(default_factory=list)
    requests_answered: Counter[str] = field(default_factory=Counter)
    events_received: list[str] = field(default_factory=list)
    ended_by: str = ""  # caller | application | bridge | error
    ended: str = ""
    close_code: int | None = None
    ping_rtt_ms: list[float] = field(default_factory=list)
    lateness_s: list[float] = field(default_factory=list)
    timeline: list[tuple[float, str]] = field(default_factory=list)
    sent_audio: bytes = b""
    played_audio: bytes = b""

    @property
    def codec_id(self) -> str:
        return str(self.codec.get("id", "?")) if self.codec else "-"

    def to_json(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "ok": self.ok,
            "error": self.error,
            "codec": self.codec_id if self.codec else None,
            "connect_ms": self.connect_ms,
            "initialize_ms": self.initialize_ms,
            "frames_sent": self.frames_sent,
            "bytes_sent": self.bytes_sent,
            "frames_received": self.frames_received,
            "bytes_received": self.bytes_received,
            "dtmf_sent": self.dtmf_sent,
            "requests_answered": dict(self.requests_answered),
            "events_received": self.events_received,
            "ended_by": self.ended_by,
            "ended": self.ended,
            "close_code": self.close_code,
            "ping_rtt_ms": [round(v, 2) for v in self.ping_rtt_ms],
            "timeline": [{"t_ms": t, "what": what} for t, what in self.timeline],
        }


def _brief(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Recorder:
    """Builds a call's timeline from what the voice peer observes (milliseconds since the upgrade began)."""

    def __init__(self, result: CallResult) -> None:
        self.result = result
        self.zero = time.monotonic()

    def at(self, when: float, what: str) -> None:
        self.result.timeline.append((round((when - self.zero) * 1000, 1), what))

    def note(self, what: str) -> None:
        self.at(time.monotonic(), what)

    def __call__(self, kind: str, detail: Any) -> None:
        if kind == "request" and isinstance(detail, Request):
            params = _brief(detail.params) if detail.params else ""
            self.note(f"application request {detail.method} {params}".rstrip())
        elif kind == "answered":
            request, response = detail
            assert isinstance(request, Request) and isinstance(response, Response)
            self.result.requests_answered[request.method] += 1
            answer = _brief(response.result) if response.ok else f"error {response.error}"
            self.note(f"answered {request.method}: {answer}")
        elif kind == "event" and isinstance(detail, Event):
            self.result.events_received.append(detail.event)
            data = _brief(detail.data) if detail.data else ""
            self.note(f"application event {detail.event} {data}".rstrip())
        elif kind == "closed":
            self.note(f"socket closed (code {detail})")


async def run_call(
    target: Target,
    script: Script,
    session_id: str,
    *,
    keep_audio: bool = False,
    on_peer: Callable[[VoicePeer, CallResult], None] | None = None,
) -> CallResult:
    """Place one simulated call. Never raises for call failures: they end up in `CallResult.error`."""
    result = CallResult(session_id)
    recorder = _Recorder(result)
    peer = VoicePeer(
        target.url,
        subprotocols=target.subprotocols(),
        headers=target.headers(),
        session_id=session_id,
        offers=script.offers,
        metadata=script.metadata,
        observer=recorder,
    )
    if on_peer is not None:
        on_peer(peer, result)
    try:
        began = time.monotonic()
        await peer.connect(origin=target.origin)
        result.connect_ms = (time.monotonic() - began) * 1000
        assert peer.ws is not None
        recorder.note(f"connected to {target.url} (subprotocol {peer.ws.subprotocol or 'none'})")
        began = time.monotonic()
        result.codec = await peer.initialize(
            application_id=script.application_id, call_id=f"call-{session_id}"
        )
        result.initialize_ms = (time.monotonic() - began) * 1000
        recorder.note(f"session.initialize answered, codec {result.codec_id}; session.updated sent")
        fmt = AudioFormat.from_codec(
            str(result.codec["name"]),
            int(result.codec["sample_rate"]),
            int(result.codec.get("bit_depth", 16)),
            int(result.codec.get("channels", 1)),
        )
        planned = script.hangup_at(len(script.audio(fmt)) / fmt.bytes_per_second)
        try:
            async with asyncio.timeout(planned + GRACE_S):  # a wedged call must not stall a load run
                await _converse(peer, script, fmt, result, recorder)
        except TimeoutError:
            result.error = f"the call had not ended {GRACE_S:g} s after the planned hang-up"
    except InvalidStatus as exc:
        body = exc.response.body.decode(errors="replace").strip() if exc.response.body else ""
        result.error = f"the bridge refused the upgrade: HTTP {exc.response.status_code} {body}".rstrip()
    except RemoteError as exc:
        result.error = f"session.initialize failed: {exc}"
    except (OSError, TimeoutError, ConnectionError, ConnectionClosed) as exc:
        result.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    except ValueError as exc:  # e.g. a codec the simulator cannot produce audio for
        result.error = str(exc)
    finally:
        with contextlib.suppress(Exception):
            await peer.close()
    _collect(peer, result, recorder, keep_audio)
    return result


async def _converse(
    peer: VoicePeer, script: Script, fmt: AudioFormat, result: CallResult, recorder: _Recorder
) -> None:
    pcm = script.audio(fmt)
    start = time.monotonic() + 0.02  # audio and digits share this clock
    hangup_at = script.hangup_at(len(pcm) / fmt.bytes_per_second)
    recorder.at(
        start,
        f"caller audio starts: {len(pcm) / fmt.bytes_per_second:.2f} s in {fmt.bytes_per_frame} B frames",
    )
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(
            peer.stream_audio(pcm, fmt.bytes_per_frame, fmt.frame_ms, start=start, lateness=result.lateness_s)
        ),
        asyncio.create_task(_press_keys(peer, script.dtmf, start, result, recorder)),
    ]
    if script.ping_interval_s > 0:
        tasks.append(asyncio.create_task(_ping(peer, script.ping_interval_s, result, stop)))
    closed = asyncio.create_task(peer.wait_closed(timeout=hangup_at + 3600))
    await asyncio.wait({closed}, timeout=max(0.0, start + hangup_at - time.monotonic()))
    stop.set()
    for task in tasks:
        task.cancel()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    sent = len(result.lateness_s)
    result.frames_sent, result.bytes_sent = sent, min(len(pcm), sent * fmt.bytes_per_frame)
    result.sent_audio = pcm[: result.bytes_sent]
    for outcome in outcomes:
        if isinstance(outcome, Exception) and not isinstance(outcome, ConnectionClosed | ConnectionError):
            result.error = f"caller task failed: {outcome!r}"
    if not closed.done():
        result.ended_by = "caller"
        recorder.note("caller hangs up: call.hangup event, then session.terminate")
        try:
            response = await peer.hangup("caller")
            if not response.ok:
                result.error = f"session.terminate answered with an error: {response.error}"
            await peer.wait_closed(5)
        except (ConnectionError, ConnectionClosed, TimeoutError) as exc:
            if peer.terminal_request is None:
                result.error = f"hang-up failed: {exc!r}"
    closed.cancel()


async def _press_keys(
    peer: VoicePeer,
    digits: tuple[tuple[str, float], ...],
    start: float,
    result: CallResult,
    recorder: _Recorder,
) -> None:
    for digit, at in sorted(digits, key=lambda d: d[1]):
        await asyncio.sleep(max(0.0, start + at - time.monotonic()))
        await peer.dtmf(digit)
        result.dtmf_sent.append(digit)
        recorder.note(f"caller pressed {digit}")


async def _ping(peer: VoicePeer, interval: float, result: CallResult, stop: asyncio.Event) -> None:
    # Python 3.11's wait_for (inside VoicePeer.request) can swallow a cancellation that races with the
    # answer, so this loop also checks `stop` rather than trusting cancel() alone.
    while not stop.is_set():
        began = time.monotonic()
        response = await peer.request("ping", {"t0": now_ms()})
        if response.ok:
            result.ping_rtt_ms.append((time.monotonic() - began) * 1000)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval):
                await stop.wait()


def _collect(peer: VoicePeer, result: CallResult, recorder: _Recorder, keep_audio: bool) -> None:
    result.frames_received = len(peer.played.frames)
    result.bytes_received = sum(len(f) for f in peer.played.frames)
    if peer.played.times:
        recorder.at(peer.played.times[0], f"first played frame ({len(peer.played.frames[0])} B)")
        result.timeline.sort(key=lambda entry: entry[0])
    if keep_audio:
        result.played_audio = peer.played.audio
    else:
        result.sent_audio = b""
    result.close_code = peer.close_code
    terminal = peer.terminal_request
    if result.error is not None:
        result.ended_by, result.ended = "error", result.error
    elif terminal is not None:
        result.ended_by = "application"
        result.ended = f"the application ended the call: {terminal.method} {_brief(terminal.params)}"
    elif result.ended_by == "caller":
        result.ended = "the caller hung up (call.hangup event, then session.terminate)"
    else:
        result.ended_by = "bridge"
        result.ended = f"the bridge closed the socket (code {peer.close_code})"
    if result.error is None and peer.close_code != 1000:
        result.error = f"socket closed with code {peer.close_code or '1006 (no close frame)'}"
        result.ended_by = "error"
    result.ok = result.error is None


# ---- the command line --------------------------------------------------------------------------------------


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


def save_recordings(result: CallResult, played: Path | None, sent: Path | None) -> None:
    if result.codec is None:
        return
    rate, channels = int(result.codec["sample_rate"]), int(result.codec.get("channels", 1))
    for path, pcm in ((played, result.played_audio), (sent, result.sent_audio)):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_wav(path, pcm[: len(pcm) - len(pcm) % (2 * channels)], rate, channels)


def summary_lines(result: CallResult, url: str, played_file: Path | None = None) -> list[str]:
    """A short human account of one call."""
    lines = [f"call {result.session_id} -> {url}: {'ok' if result.ok else 'FAILED'}"]
    if result.codec is not None:
        rtts = sorted(result.ping_rtt_ms)
        rtt = f", ping round trip {rtts[len(rtts) // 2]:.1f} ms (median)" if rtts else ""
        lines.append(
            f"  codec        {result.codec_id}; connect {result.connect_ms:.1f} ms, "
            f"session.initialize {result.initialize_ms:.1f} ms{rtt}"
        )
        rate = int(result.codec["sample_rate"]) * int(result.codec.get("channels", 1)) * 2
        digits = " ".join(result.dtmf_sent) or "none"
        lines.append(
            f"  caller sent  {result.frames_sent} frames ({result.bytes_sent / rate:.2f} s), DTMF: {digits}"
        )
        where = f" -> {played_file}" if played_file is not None else ""
        lines.append(
            f"  played back  {result.frames_received} frames ({result.bytes_received / rate:.2f} s){where}"
        )
        answered = ", ".join(f"{m} x{n}" for m, n in sorted(result.requests_answered.items())) or "none"
        lines.append(f"  requests     answered {sum(result.requests_answered.values())}: {answered}")
        if result.events_received:
            lines.append(f"  events       {', '.join(result.events_received)}")
    closed = f" (socket closed {result.close_code})" if result.close_code else ""
    lines.append(f"  ended        {result.ended}{closed}")
    return lines


def print_timeline(result: CallResult, out: TextIO) -> None:
    print("  timeline (caller's view, ms since the upgrade began):", file=out)
    for t, what in result.timeline:
        print(f"    {t:9.1f}  {what}", file=out)


async def simulate(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Run `rtvbp-bridge simulate` with parsed arguments; the exit code (0 only when every call was ok)."""
    from bridge.tools import loadgen

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
