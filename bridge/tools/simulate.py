"""One simulated telephony call against a bridge: what to call, what the caller does, what happened.

`run_call` places one call as a real voice would (what a call consists of is told in `simulate_cli`,
the `rtvbp-bridge simulate` command line); `loadgen` places many at once. Neither imports the command
line, which imports both.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from websockets.exceptions import ConnectionClosed, InvalidStatus

from bridge.audio.format import AudioFormat
from bridge.audio.signal import tone
from bridge.audio.wav import read_wav_as_l16, write_wav
from bridge.protocol.envelope import Event, Request, Response
from bridge.tools.voicepeer import RemoteError, VoicePeer, bearer_subprotocol, codec, now_ms

DEFAULT_URL = "ws://127.0.0.1:8080/"
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


# ---- presenting a result ---------------------------------------------------------------------------------


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
