"""A voice-role RTVBP peer (what telephony does), used by the simulator, the load generator and tests.

It speaks the wire protocol by hand through the project's own envelope codec, answers every
application->voice request the way a real voice does (playout buffer, `audio.buffer.clear` returning
the bytes it dropped, terminal operations closing the socket, session variables, recording ids) and
records what the application plays.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from bridge.errors import CodedError
from bridge.protocol.envelope import ABSENT, ErrorObject, Event, Request, Response, decode_frame, encode_frame
from bridge.protocol.negotiation import BEARER_SUBPROTOCOL_PREFIX

L16_8K = {"id": "L16/8000/1", "name": "L16", "sample_rate": 8000, "bit_depth": 16, "channels": 1}
REVERSE_TERMINATE = "session.terminate is not supported. please use application.move or call.hangup instead"


def codec(sample_rate: int = 8000, channels: int = 1) -> dict[str, Any]:
    return {
        "id": f"L16/{sample_rate}/{channels}",
        "name": "L16",
        "sample_rate": sample_rate,
        "bit_depth": 16,
        "channels": channels,
    }


def now_ms() -> int:
    return time.time_ns() // 1_000_000


#: Told about what happens on the socket: ("request", Request), ("answered", (Request, Response)),
#: ("event", Event) and ("closed", close code). Used by the simulator to build a call's timeline.
Observer = Callable[[str, Any], None]
TERMINAL_METHODS = frozenset({"call.hangup", "application.move"})


class RemoteError(CodedError):
    """An error response from the application side."""

    def __str__(self) -> str:
        return f"{self.code} {self.message}"


@dataclass
class Played:
    """Audio the application sent us, with arrival times (monotonic seconds) per frame."""

    frames: list[bytes] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    @property
    def audio(self) -> bytes:
        return b"".join(self.frames)


@dataclass
class VoicePeer:
    url: str
    subprotocols: Sequence[str] | None = ("rtvbp.v1",)
    headers: Mapping[str, str] | None = None
    session_id: str = "session-1"
    offers: Sequence[Mapping[str, Any]] = (L16_8K,)
    metadata: Mapping[str, Any] | None = None
    request_timeout: float = 5.0
    # How the voice answers the application's requests (playout buffer semantics are simulated).
    variables: dict[str, Any] = field(default_factory=dict)
    playback_rate_bytes_per_s: int = 16000
    respond: bool = True
    #: Methods answered with this (code, message) error instead, like a voice that cannot do them now.
    fail: dict[str, tuple[int, str]] = field(default_factory=dict)
    close_after_terminal: bool = True
    legacy_terminate_after_terminal: bool = False
    observer: Observer | None = None

    ws: ClientConnection | None = None
    codec: dict[str, Any] | None = None
    played: Played = field(default_factory=Played)
    events_received: list[Event] = field(default_factory=list)
    requests_received: list[Request] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    close_code: int | None = None
    requests_answered: int = 0
    #: The application's terminal request (call.hangup / application.move) that ended the call, if any.
    terminal_request: Request | None = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _pending: dict[str, asyncio.Future[Response]] = field(default_factory=dict)
    _reader: asyncio.Task[None] | None = None
    _buffered_until: float = 0.0
    _recordings: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _dtmf_seq: itertools.count[int] = field(default_factory=lambda: itertools.count(0))
    _closed: asyncio.Event = field(default_factory=asyncio.Event)
    request_seen: asyncio.Condition = field(default_factory=asyncio.Condition)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def connect(self, **kwargs: Any) -> None:
        protocols = [Subprotocol(p) for p in self.subprotocols] if self.subprotocols else None
        self.ws = await connect(
            self.url,
            subprotocols=protocols,
            additional_headers=self.headers,
            compression=None,
            open_timeout=10,
            **kwargs,
        )
        self._reader = asyncio.create_task(self._read())

    async def __aenter__(self) -> VoicePeer:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self, code: int = 1000) -> None:
        if self.ws is not None:
            await self.ws.close(code)
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5)

    async def wait_closed(self, timeout: float = 5.0) -> int | None:
        await asyncio.wait_for(self._closed.wait(), timeout)
        return self.close_code

    # ---- voice -> application ---------------------------------------------------------------------------

    def next_id(self, prefix: str = "voice") -> str:
        return f"{prefix}-{next(self._ids)}"

    async def request(self, method: str, params: Any = ABSENT, request_id: str | None = None) -> Response:
        assert self.ws is not None
        rid = request_id or self.next_id()
        waiter: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._pending[rid] = waiter
        await self.ws.send(encode_frame(Request(rid, method, params)))
        return await asyncio.wait_for(waiter, self.request_timeout)

    async def initialize(self, application_id: str = "app-1", call_id: str = "call-1") -> dict[str, Any]:
        params = {
            "application": {"id": application_id},
            "call": {
                "id": call_id,
                "session_id": self.session_id,
                "from": "+12025550100",
                "to": "+12025550101",
            },
            "audio_codec_offerings": [dict(o) for o in self.offers],
            "metadata": dict(self.metadata) if self.metadata is not None else None,
        }
        response = await self.request("session.initialize", params)
        if response.error is not None:
            raise RemoteError(response.error.code, response.error.message)
        assert isinstance(response.result, dict)
        self.codec = response.result["audio_codec"]
        # The simulated playout buffer drains at the negotiated rate (16000 B/s is only right for 8 kHz mono).
        rate, channels = self.codec.get("sample_rate"), self.codec.get("channels", 1)
        if isinstance(rate, int) and isinstance(channels, int) and rate > 0 and channels > 0:
            self.playback_rate_bytes_per_s = rate * channels * 2
        await self.event("session.updated", {"audio_codec": self.codec})
        return self.codec

    async def event(self, name: str, data: Any = ABSENT) -> None:
        assert self.ws is not None
        await self.ws.send(encode_frame(Event(self.next_id("event"), name, data)))

    async def dtmf(self, digit: str, hold_ms: int = 120) -> None:
        pressed = now_ms()
        await self.event(
            "dtmf",
            {
                "seq": next(self._dtmf_seq),
                "pressed_at": pressed,
                "released_at": pressed + hold_ms,
                "digit": digit,
            },
        )

    async def send_audio(self, data: bytes) -> None:
        assert self.ws is not None
        await self.ws.send(data)

    async def stream_audio(
        self,
        pcm: bytes,
        frame_bytes: int = 320,
        frame_ms: int = 20,
        *,
        start: float | None = None,
        lateness: list[float] | None = None,
    ) -> None:
        """Send `pcm` in real time, one frame per `frame_ms`, on an absolute schedule (no drift).

        `start` is the monotonic time of the first frame (default: now). `lateness`, when given, receives
        how late each frame was sent in seconds: an overloaded event loop shows up there, not as drift.
        """
        start = time.monotonic() if start is None else start
        for index, offset in enumerate(range(0, len(pcm), frame_bytes)):
            due = start + index * frame_ms / 1000
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            late = max(0.0, time.monotonic() - due)
            await self.send_audio(pcm[offset : offset + frame_bytes])
            if lateness is not None:  # one entry per frame actually sent
                lateness.append(late)

    async def hangup(self, reason: str = "caller") -> Response:
        """The caller leaves: `call.hangup` event, then `session.terminate{"reason":"hangup"}`."""
        await self.event("call.hangup", {"reason": reason})
        return await self.request("session.terminate", {"reason": "hangup"})

    # ---- application -> voice -----------------------------------------------------------------------------

    def _notify(self, what: str, detail: Any) -> None:
        if self.observer is not None:
            self.observer(what, detail)

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for message in self.ws:
                if isinstance(message, bytes):
                    self.played.frames.append(message)
                    self.played.times.append(time.monotonic())
                    self._buffer(len(message))
                    continue
                self.texts.append(message)
                frame = decode_frame(message)
                if isinstance(frame, Response):
                    waiter = self._pending.pop(frame.response, None)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(frame)
                elif isinstance(frame, Event):
                    self.events_received.append(frame)
                    self._notify("event", frame)
                else:
                    self.requests_received.append(frame)
                    self._notify("request", frame)
                    async with self.request_seen:
                        self.request_seen.notify_all()
                    if self.respond:
                        # A task: a legacy terminal answer sends a request of its own and needs this reader.
                        task = asyncio.create_task(self._answer(frame))
                        self._tasks.add(task)
                        task.add_done_callback(self._tasks.discard)
        except ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            self._notify("closed", self.close_code)
            for waiter in self._pending.values():
                if not waiter.done():
                    waiter.set_exception(ConnectionError("socket closed"))
            self._closed.set()

    def _buffer(self, size: int) -> None:
        now = time.monotonic()
        self._buffered_until = max(self._buffered_until, now) + size / self.playback_rate_bytes_per_s

    def buffered_bytes(self) -> int:
        left = max(0.0, self._buffered_until - time.monotonic())
        return int(left * self.playback_rate_bytes_per_s) & ~1

    async def wait_request(self, method: str, timeout: float = 5.0) -> Request:
        async def find() -> Request:
            async with self.request_seen:
                while True:
                    for req in self.requests_received:
                        if req.method == method:
                            return req
                    await self.request_seen.wait()

        return await asyncio.wait_for(find(), timeout)

    async def _answer(self, request: Request) -> None:
        assert self.ws is not None
        params = request.params if isinstance(request.params, dict) else {}
        result: Any = {}
        error: ErrorObject | None = None
        terminal = False
        method = request.method
        if method in self.fail:
            error = ErrorObject(*self.fail[method])
        elif method == "audio.buffer.clear":
            result = {"len": self.buffered_bytes()}
            self._buffered_until = 0.0
        elif method == "ping":
            t = now_ms()
            result = {"t0": params.get("t0", t), "t1": t, "t2": t, "owd": t - int(params.get("t0", t))}
            if "data" in params:
                result["data"] = params["data"]
        elif method in TERMINAL_METHODS:
            terminal = True
            if method == "application.move" and params.get("application_id"):
                result = {"next_application_id": params["application_id"]}
        elif method == "recording.start":
            result = {"id": f"recording-{next(self._recordings)}"}
        elif method == "recording.stop":
            result = {}
        elif method == "session.get":
            keys = params.get("keys") or list(self.variables)
            result = {k: self.variables[k] for k in sorted(keys) if k in self.variables}
        elif method == "session.set":
            self.variables.update(params.get("data") or {})
        elif method == "session.terminate":
            error = ErrorObject(501, REVERSE_TERMINATE)
        else:
            error = ErrorObject(501, f"unknown method: {method}")
        response = Response(request.id, result=result) if error is None else Response(request.id, error=error)
        await self.ws.send(encode_frame(response))
        self.requests_answered += 1
        self._notify("answered", (request, response))
        if error is not None:
            return
        if terminal:
            self.terminal_request = request
        if terminal and self.close_after_terminal:
            if self.legacy_terminate_after_terminal:
                with contextlib.suppress(Exception):
                    await self.request("session.terminate", {"reason": method})
            await asyncio.sleep(0.05)
            await self.ws.close(1000)


def bearer_subprotocol(token: str) -> str:
    return BEARER_SUBPROTOCOL_PREFIX + base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")
