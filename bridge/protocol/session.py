"""The application side of one RTVBP session, sans I/O.

Feed it what arrives on the socket (`receive_text`, `receive_binary`, `connection_lost`), what the
application wants to do (`send_request`, `send_event`, `accept_initialize`), and the passage of time
(`expire`). Each call returns the actions the I/O layer must carry out, in order: frames to send, a close
to perform, and notifications upward (voice events, caller audio, settled requests). Nothing here blocks,
sleeps or touches a socket, so every protocol rule is testable with plain function calls.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

from bridge.errors import CodedError
from bridge.protocol import catalog
from bridge.protocol.catalog import (
    OPERATIONS,
    AudioCodec,
    EmptyResponse,
    Payload,
    PayloadDecodeError,
    PayloadError,
    PingRequest,
    PingResponse,
    SessionInitializeRequest,
    SessionInitializeResponse,
    SessionTerminateRequest,
)
from bridge.protocol.codecs import choose_codec
from bridge.protocol.envelope import (
    ABSENT,
    EnvelopeError,
    ErrorObject,
    Event,
    Request,
    Response,
    decode_frame,
    encode_frame,
)

# Requests the application role answers itself; every other method gets the frozen 501.
HANDLED_HERE = frozenset({"session.initialize", "session.terminate", "ping"})
# Events a voice sends us; anything else is ignored (unknown events must never fail a session).
VOICE_EVENTS = frozenset(name for name, spec in catalog.EVENTS.items() if spec.emitted_by == "voice")
APPLICATION_EVENTS = frozenset(
    name for name, spec in catalog.EVENTS.items() if spec.emitted_by == "application"
)
TERMINAL_REQUESTS = frozenset(
    m for m, spec in OPERATIONS.items() if spec.terminal and m != "session.terminate"
)
# After a successful terminal request the voice closes; if it does not, we do, after this long.
TERMINAL_CLOSE_FALLBACK_MS = 2000

CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008
CLOSE_INTERNAL = 1011
CLOSE_GOING_AWAY = 1001


class State(Enum):
    AWAIT_INIT = "await_init"  # socket open, no session.initialize yet
    INITIALIZING = "initializing"  # initialize received; the application is getting ready to accept
    INITIALIZED = "initialized"  # our initialize response is out; voice not ready until session.updated
    READY = "ready"  # session.updated seen: full duplex
    CLOSING = "closing"  # a close is decided; in-flight traffic still handled
    CLOSED = "closed"


EndReason = Literal["terminate", "hangup", "move", "disconnect", "error", "shutdown"]
Violation = Literal[
    "malformed_frame",
    "early_binary",
    "invalid_event",
    "unknown_event",
    "unknown_response",
    "duplicate_initialize",
    "codec_changed",
    "invalid_request",
]


_AUDIO_STATES = frozenset({State.INITIALIZED, State.READY, State.CLOSING})


class SessionStateError(CodedError):
    """The application asked for something the session cannot do in its current state."""


# ---- actions ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendText:
    text: str


@dataclass(frozen=True, slots=True)
class Close:
    code: int
    reason: str
    delay_ms: int = 0  # wait this long (after flushing everything queued) before closing


@dataclass(frozen=True, slots=True)
class InitializeRequested:
    """Answer with `accept_initialize()` or `reject_initialize()` once the application is ready."""

    request_id: str
    params: SessionInitializeRequest
    codec: AudioCodec


@dataclass(frozen=True, slots=True)
class VoiceEvent:
    name: str
    payload: Payload
    raw: Any  # the voice's data unchanged (absent -> {}), what consumers get


@dataclass(frozen=True, slots=True)
class AudioIn:
    data: bytes


@dataclass(frozen=True, slots=True)
class Ready:
    """The voice sent session.updated: it now accepts our requests."""


@dataclass(frozen=True, slots=True)
class RequestSettled:
    request_id: str
    method: str
    ok: bool
    result: Any = None  # the voice's result (raw JSON value) when ok
    code: int = 0  # error code when not ok
    message: str = ""


@dataclass(frozen=True, slots=True)
class Answered:
    """We answered a voice request (for request metrics and spans); code 0 = success."""

    method: str
    code: int


@dataclass(frozen=True, slots=True)
class ProtocolViolation:
    kind: Violation
    detail: str


@dataclass(frozen=True, slots=True)
class Ended:
    reason: EndReason
    detail: str


Action = (
    SendText
    | Close
    | InitializeRequested
    | VoiceEvent
    | AudioIn
    | Ready
    | RequestSettled
    | Answered
    | ProtocolViolation
    | Ended
)


@dataclass(slots=True)
class _Pending:
    method: str
    deadline: float
    text: str  # encoded request, kept while it waits for the voice to become ready
    sent: bool = False


@dataclass(slots=True)
class SessionCounters:
    """Input the session dropped, reported in session.ended (the rest is in ProtocolViolation actions)."""

    malformed_frames: int = 0
    early_binary_frames: int = 0


def new_request_id() -> str:
    return secrets.token_urlsafe(15)


@dataclass(slots=True)
class SessionConfig:
    codec_preference: Sequence[str] = ("L16/8000/1",)
    request_timeout_s: float = 5.0
    init_timeout_s: float = 10.0
    terminal_grace_ms: int = 100


@dataclass
class ApplicationSession:
    """One RTVBP session seen from the application role.

    `now` arguments are monotonic seconds (deadlines); `wall_ms` is the epoch-milliseconds clock used for
    `ping` timestamps, injectable for tests.
    """

    config: SessionConfig
    opened_at: float
    wall_ms: Callable[[], int]
    state: State = State.AWAIT_INIT
    codec: AudioCodec | None = None
    init_params: SessionInitializeRequest | None = None
    counters: SessionCounters = field(default_factory=SessionCounters)
    _init_request_id: str | None = None
    _pending: dict[str, _Pending] = field(default_factory=dict)
    _end_reason: EndReason | None = None
    _end_detail: str = ""
    _hangup_seen: bool = False

    # ---- socket input ---------------------------------------------------------------------------------

    def receive_text(self, text: str, now: float, received_ms: int | None = None) -> list[Action]:
        if self.state is State.CLOSED:
            return []
        try:
            frame = decode_frame(text)
        except EnvelopeError as exc:
            self.counters.malformed_frames += 1
            return [ProtocolViolation("malformed_frame", str(exc))]
        if isinstance(frame, Event):
            return self._on_event(frame)
        if isinstance(frame, Request):
            return self._on_request(frame, now, received_ms if received_ms is not None else self.wall_ms())
        return self._on_response(frame)

    @property
    def audio_open(self) -> bool:
        """Whether caller audio is accepted now; `receive_binary` would return exactly [AudioIn(data)].

        Lets the I/O layer skip building actions for the one message type that arrives 50 times a second.
        """
        return self.codec is not None and self.state in _AUDIO_STATES

    def receive_binary(self, data: bytes) -> list[Action]:
        """Caller audio. Before our initialize answer no codec is bound: such frames are dropped, counted."""
        if self.state in (State.AWAIT_INIT, State.INITIALIZING) or self.codec is None:
            self.counters.early_binary_frames += 1
            return [
                ProtocolViolation("early_binary", f"{len(data)} bytes before session.initialize completed")
            ]
        if self.state is State.CLOSED or not data:
            return []
        return [AudioIn(data)]

    def connection_lost(self, code: int | None, reason: str = "") -> list[Action]:
        """The socket is gone (either side closed it, or it broke). Settles everything still pending."""
        if self.state is State.CLOSED:
            return []
        self.state = State.CLOSED
        actions: list[Action] = []
        unanswered: list[str] = []
        for request_id, pending in list(self._pending.items()):
            del self._pending[request_id]
            # Even a terminal request (a voice that hangs up when asked to move) is not a success: nothing
            # says the move happened, and an answer would carry its result (next_application_id).
            why = "the call closed before the voice answered" if pending.sent else "session closed"
            actions.append(RequestSettled(request_id, pending.method, False, code=503, message=why))
            if pending.sent and pending.method in TERMINAL_REQUESTS:
                unanswered.append(pending.method)
        if self._end_reason is None:
            detail = f"socket closed ({code} {reason})".strip()
            if unanswered:
                detail += f" before the voice answered {', '.join(unanswered)}"
            self._set_end("hangup" if self._hangup_seen else "disconnect", detail)
        assert self._end_reason is not None
        actions.append(Ended(self._end_reason, self._end_detail))
        return actions

    # ---- application input ----------------------------------------------------------------------------

    def accept_initialize(self, now: float) -> list[Action]:
        """The application is ready (e.g. session.started is confirmed upstream): answer initialize."""
        if self.state is not State.INITIALIZING or self._init_request_id is None or self.codec is None:
            return []
        self.state = State.INITIALIZED
        response = Response(self._init_request_id, result=SessionInitializeResponse(self.codec).to_wire())
        return [SendText(encode_frame(response)), Answered("session.initialize", 0)]

    def reject_initialize(self, code: int, message: str) -> list[Action]:
        """The application cannot take this call: answer initialize with an error and close."""
        if self.state is not State.INITIALIZING or self._init_request_id is None:
            return []
        self.codec = None
        return [
            SendText(encode_frame(Response(self._init_request_id, error=ErrorObject(code, message)))),
            Answered("session.initialize", code),
            *self.close(CLOSE_INTERNAL, "session setup failed", "error", message),
        ]

    def send_request(self, method: str, params: Any, now: float) -> tuple[str, list[Action]]:
        """Ask the voice to do something. Params are validated strictly before anything is sent.

        Before the voice is ready (between our initialize answer and its session.updated) the request
        waits here, because voices answer 500 `session not initialized` in that window.
        """
        spec = OPERATIONS.get(method)
        if spec is None or spec.handled_by == "application":  # initialize, terminate: the voice's to send
            raise SessionStateError(400, f"{method!r} is not an application-to-voice operation")
        if self.state in (State.CLOSING, State.CLOSED):
            raise SessionStateError(409, f"session is {self.state.value}")
        if self.state in (State.AWAIT_INIT, State.INITIALIZING):
            raise SessionStateError(409, "session is not initialized yet")
        payload = catalog.decode_params(method, params)  # raises PayloadError -> caller answers 400
        request_id = new_request_id()
        text = _encode_outgoing(Request(request_id, method, payload.to_wire()))
        pending = _Pending(method, now + self.config.request_timeout_s, text)
        self._pending[request_id] = pending
        if self.state is State.READY:
            pending.sent = True
            return request_id, [SendText(text)]
        return request_id, []

    def send_event(self, name: str, data: Any) -> list[Action]:
        if name not in APPLICATION_EVENTS:
            raise SessionStateError(400, f"{name!r} is not an application-to-voice event")
        if self.state not in (State.INITIALIZED, State.READY):
            raise SessionStateError(409, f"session is {self.state.value}")
        payload = catalog.decode_event_data(name, data)
        text = _encode_outgoing(Event(new_request_id(), name, payload.to_wire()))
        return [SendText(text)]

    def close(
        self, code: int, reason: str, end_reason: EndReason, detail: str = "", delay_ms: int = 0
    ) -> list[Action]:
        """Decide to close (shutdown, error). The I/O layer performs the close and then reports it."""
        if self.state in (State.CLOSING, State.CLOSED):
            return []
        return [self._decide_close(code, reason, end_reason, detail or reason, delay_ms)]

    def _decide_close(
        self, code: int, reason: str, end_reason: EndReason, detail: str, delay_ms: int
    ) -> Close:
        """A later, sooner close supersedes an earlier one; the I/O layer honours the earliest deadline."""
        self.state = State.CLOSING
        self._set_end(end_reason, detail)  # the first decided reason wins (e.g. shutdown, then move)
        return Close(code, reason, delay_ms)

    def expire(self, now: float) -> list[Action]:
        """Time has passed: fail requests the voice did not answer, give up on a silent voice."""
        actions: list[Action] = []
        if self.state is State.AWAIT_INIT and now - self.opened_at >= self.config.init_timeout_s:
            actions += self.close(CLOSE_POLICY, "session.initialize not received", "error")
        for request_id, pending in list(self._pending.items()):
            if now >= pending.deadline:
                del self._pending[request_id]
                why = "voice did not answer in time" if pending.sent else "voice never became ready"
                actions.append(RequestSettled(request_id, pending.method, False, code=504, message=why))
        return actions

    def next_deadline(self) -> float | None:
        deadlines = [p.deadline for p in self._pending.values()]
        if self.state is State.AWAIT_INIT:
            deadlines.append(self.opened_at + self.config.init_timeout_s)
        return min(deadlines, default=None)

    def mark_ending(self, reason: EndReason, detail: str) -> None:
        """Record why the session is ending before the steps that end it (e.g. a drain's application.move)."""
        self._set_end(reason, detail)

    # ---- frame handlers -------------------------------------------------------------------------------

    def _on_request(self, request: Request, now: float, received_ms: int) -> list[Action]:
        method = request.method
        if method not in HANDLED_HERE:
            return [self._error(request.id, 501, f"unknown method: {method}"), self._answered(method, 501)]
        try:
            payload = catalog.decode_params(method, None if request.params is ABSENT else request.params)
        except PayloadError as exc:
            message = (
                str(exc) if not isinstance(exc, PayloadDecodeError) else f"decode {method} request: {exc}"
            )
            return [
                self._error(request.id, 400, message),
                self._answered(method, 400),
                ProtocolViolation("invalid_request", message),
            ]
        if isinstance(payload, PingRequest):
            return [self._answer_ping(request.id, payload, received_ms), self._answered(method)]
        if isinstance(payload, SessionTerminateRequest):
            return [*self._on_terminate(request.id, payload), self._answered(method)]
        assert isinstance(payload, SessionInitializeRequest)
        return self._on_initialize(request.id, payload)

    def _on_initialize(self, request_id: str, params: SessionInitializeRequest) -> list[Action]:
        if self.state is not State.AWAIT_INIT:
            # Format is immutable for a session; keep the first negotiation (the Go reference app does too).
            return [
                self._error(request_id, 500, "session already initialized"),
                self._answered("session.initialize", 500),
                ProtocolViolation(
                    "duplicate_initialize", f"second session.initialize in state {self.state.value}"
                ),
            ]
        offered = params.audio_codec_offerings
        if not offered:
            return [
                self._error(request_id, 400, "no audio codec offerings"),
                self._answered("session.initialize", 400),
            ]
        codec = choose_codec(offered, self.config.codec_preference)
        if codec is None:
            offer_ids = ", ".join(c.id for c in offered)
            wanted = ", ".join(self.config.codec_preference)
            return [
                self._error(
                    request_id, 400, f"no acceptable audio codec offered ({offer_ids}); accepted: {wanted}"
                )
            ]
        self.state = State.INITIALIZING
        self.codec = codec
        self.init_params = params
        self._init_request_id = request_id
        return [InitializeRequested(request_id, params, codec)]

    def _on_terminate(self, request_id: str, params: SessionTerminateRequest) -> list[Action]:
        reason: EndReason = "hangup" if params.reason == "hangup" or self._hangup_seen else "terminate"
        answer = SendText(encode_frame(Response(request_id, result=EmptyResponse().to_wire())))
        detail = f"session.terminate: {params.reason}"
        return [
            answer,
            self._decide_close(CLOSE_NORMAL, "Closed", reason, detail, self.config.terminal_grace_ms),
        ]

    def _answer_ping(self, request_id: str, ping: PingRequest, received_ms: int) -> SendText:
        handled_ms = self.wall_ms()
        result = PingResponse(
            t0=ping.t0, t1=received_ms, t2=handled_ms, owd=handled_ms - ping.t0, data=ping.data
        ).to_wire()
        return SendText(encode_frame(Response(request_id, result=result)))

    def _on_event(self, event: Event) -> list[Action]:
        name = event.event
        if name not in VOICE_EVENTS:
            return [ProtocolViolation("unknown_event", name)]
        raw = {} if event.data is ABSENT or event.data is None else event.data
        try:
            payload = catalog.decode_event_data(name, raw)
        except PayloadError as exc:
            return [ProtocolViolation("invalid_event", f"{name}: {exc}")]
        actions: list[Action] = []
        if name == "call.hangup":
            self._hangup_seen = True
        elif name == "session.updated":
            actions += self._on_updated(payload)
        actions.insert(0, VoiceEvent(name, payload, raw))
        return actions

    def _on_updated(self, payload: Payload) -> list[Action]:
        assert isinstance(payload, catalog.SessionUpdatedEvent)
        actions: list[Action] = []
        if payload.audio_codec is not None and self.codec is not None and payload.audio_codec != self.codec:
            actions.append(
                ProtocolViolation(
                    "codec_changed", f"voice reports {payload.audio_codec.id}; keeping {self.codec.id}"
                )
            )
        if self.state is State.INITIALIZED:
            self.state = State.READY
            actions.append(Ready())
            for pending in self._pending.values():
                if not pending.sent:
                    pending.sent = True
                    actions.append(SendText(pending.text))
        return actions

    def _on_response(self, response: Response) -> list[Action]:
        pending = self._pending.pop(response.response, None)
        if pending is None:
            return [ProtocolViolation("unknown_response", response.response)]
        method = pending.method
        if response.error is not None:
            return [
                RequestSettled(
                    response.response, method, False, code=response.error.code, message=response.error.message
                )
            ]
        result: Any = {} if response.result is ABSENT or response.result is None else response.result
        try:
            catalog.decode_result(method, result)
        except PayloadError as exc:
            return [
                RequestSettled(
                    response.response, method, False, code=502, message=f"invalid {method} result: {exc}"
                )
            ]
        actions: list[Action] = [RequestSettled(response.response, method, True, result=result)]
        if method in TERMINAL_REQUESTS and self.state not in (State.CLOSING, State.CLOSED):
            # The voice closes after a terminal reply; legacy voices first send us session.terminate.
            end: EndReason = "hangup" if method == "call.hangup" else "move"
            closing = self._decide_close(
                CLOSE_NORMAL, "Closed", end, f"{method} succeeded", TERMINAL_CLOSE_FALLBACK_MS
            )
            actions.append(closing)
        return actions

    # ---- helpers --------------------------------------------------------------------------------------

    def _error(self, request_id: str, code: int, message: str) -> SendText:
        return SendText(encode_frame(Response(request_id, error=ErrorObject(code, message))))

    @staticmethod
    def _answered(method: str, code: int = 0) -> Answered:
        return Answered(method if method in OPERATIONS else "unknown", code)

    def _set_end(self, reason: EndReason, detail: str) -> None:
        if self._end_reason is None:
            self._end_reason = reason
            self._end_detail = detail


def _encode_outgoing(frame: Request | Event) -> str:
    """Encode what the application asked us to send; values JSON cannot carry exactly are its error."""
    try:
        return encode_frame(frame)
    except EnvelopeError as exc:  # e.g. msgpack bytes, or integers beyond what JSON peers read exactly
        raise PayloadError(str(exc)) from None
