"""The typed `babelforce.v1` catalog: every operation's params/result and every event's data.

Decoding is lenient the way the deployed Go peers are (protocol.md §1.6): unknown fields are ignored,
and an absent or `null` field takes its zero value (`""`, `0`, empty list/map, all-zero object), after
which the catalog's validation rules run, so e.g. an absent `reason` fails exactly like an empty one.
Wrong JSON types, `true` where an integer is due, and integers beyond int64 are decode errors.

Encoding is strict: `to_wire` validates first, writes fields in the declared wire order, always writes
the required-nullable keys (`metadata`, both `audio_codec`s), omits absent optional keys, and sorts the
keys of free-form maps as Go does.

Both directions are derived once per type from its dataclass fields: the type annotation picks the
reader and writer, and `_wire(...)` field metadata says the rest (a wire key that is not the field name,
null written rather than omitted, an empty list omitted). A payload type declares fields and `validate`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal, NoReturn, Self, TypeVar

from bridge.protocol import wire
from bridge.protocol.envelope import ABSENT

__all__ = [
    "EVENTS",
    "OPERATIONS",
    "REVERSE_TERMINATE_MESSAGE",
    "AgentToolCallEvent",
    "AppInfo",
    "ApplicationMoveRequest",
    "ApplicationMoveResponse",
    "AudioBufferClearRequest",
    "AudioBufferClearResponse",
    "AudioCodec",
    "AudioInfoEvent",
    "AudioInfoItem",
    "AudioSpeechStartedEvent",
    "CallHangupEvent",
    "CallHangupRequest",
    "CallInfo",
    "DtmfEvent",
    "EmptyResponse",
    "EventSpec",
    "InputTranscriptEvent",
    "OperationSpec",
    "OutputTranscriptDeltaEvent",
    "OutputTranscriptDoneEvent",
    "Payload",
    "PayloadDecodeError",
    "PayloadError",
    "PayloadValidationError",
    "PingRequest",
    "PingResponse",
    "RecordingStartRequest",
    "RecordingStartResponse",
    "RecordingStopRequest",
    "SessionGetRequest",
    "SessionGetResponse",
    "SessionInitializeRequest",
    "SessionInitializeResponse",
    "SessionSetRequest",
    "SessionTerminateRequest",
    "SessionUpdatedEvent",
    "decode_event_data",
    "decode_params",
    "decode_result",
]

REVERSE_TERMINATE_MESSAGE: Final = (
    "session.terminate is not supported. please use application.move or call.hangup instead"
)


class PayloadError(ValueError):
    """A payload that cannot be accepted or sent."""


class PayloadDecodeError(PayloadError):
    """Wrong JSON types or shape; the message reads `decode <name>: <detail>`."""


class PayloadValidationError(PayloadError):
    """A semantic catalog rule failed; the message is the validator's, as the SDKs word it."""


class _MalformedError(Exception):
    """Internal: carries the path-qualified detail up to the payload being decoded."""


_T = TypeVar("_T", bound="Payload")

# ------------------------------------------------------------------------------------------- readers


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _at(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _wrong(path: str, expected: str, value: Any) -> NoReturn:
    raise _MalformedError(f"{path or 'payload'}: expected {expected}, got {_kind(value)}")


def _object(value: Any, path: str) -> dict[str, Any]:
    if value is None or value is ABSENT:
        return {}
    if isinstance(value, dict):
        return value
    _wrong(path, "object", value)


def _str(obj: dict[str, Any], key: str, path: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    _wrong(_at(path, key), "string", value)


def _opt_str(obj: dict[str, Any], key: str, path: str) -> str | None:
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    _wrong(_at(path, key), "string", value)


def _int_value(value: Any, path: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        if wire.INT64_MIN <= value <= wire.INT64_MAX:
            return int(value)
        raise _MalformedError(f"{path}: integer does not fit int64")
    _wrong(path, "integer", value)


def _int(obj: dict[str, Any], key: str, path: str) -> int:
    value = obj.get(key)
    return 0 if value is None else _int_value(value, _at(path, key))


def _opt_int(obj: dict[str, Any], key: str, path: str) -> int | None:
    value = obj.get(key)
    return None if value is None else _int_value(value, _at(path, key))


def _float(obj: dict[str, Any], key: str, path: str) -> float:
    value = obj.get(key)
    if value is None:
        return 0.0
    if isinstance(value, int) and not isinstance(value, bool):
        return float(_int_value(value, _at(path, key)))
    if isinstance(value, float):
        if math.isfinite(value):
            return float(value)
        raise _MalformedError(f"{_at(path, key)}: number must be finite")
    _wrong(_at(path, key), "number", value)


def _list(obj: dict[str, Any], key: str, path: str) -> list[Any]:
    value = obj.get(key)
    if value is None:  # Go marshals a nil slice as null
        return []
    if isinstance(value, list):
        return value
    _wrong(_at(path, key), "array", value)


def _str_list(obj: dict[str, Any], key: str, path: str) -> tuple[str, ...]:
    items = _list(obj, key, path)
    for index, item in enumerate(items):
        if item is not None and not isinstance(item, str):
            _wrong(f"{_at(path, key)}[{index}]", "string", item)
    return tuple("" if item is None else item for item in items)


def _map(obj: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    return _object(obj.get(key), _at(path, key))  # Go marshals a nil map as null


def _opt_map(obj: dict[str, Any], key: str, path: str) -> dict[str, Any] | None:
    value = obj.get(key)
    return None if value is None else _object(value, _at(path, key))


def _nested(cls: type[_T], obj: dict[str, Any], key: str, path: str) -> _T:
    where = _at(path, key)
    return cls._decode(_object(obj.get(key), where), where)


def _opt_nested(cls: type[_T], obj: dict[str, Any], key: str, path: str) -> _T | None:
    return None if obj.get(key) is None else _nested(cls, obj, key, path)


def _nested_list(cls: type[_T], obj: dict[str, Any], key: str, path: str) -> tuple[_T, ...]:
    where = _at(path, key)
    return tuple(
        cls._decode(_object(item, f"{where}[{i}]"), f"{where}[{i}]")
        for i, item in enumerate(_list(obj, key, path))
    )


def _any(obj: dict[str, Any], key: str, path: str) -> Any:
    return obj.get(key)  # free-form: any JSON value the wire parser accepted


# ------------------------------------------------------------------------------------ field metadata

_WIRE_METADATA: Final = "rtvbp.wire"


@dataclass(frozen=True, slots=True)
class _WireOptions:
    key: str | None = None  # the wire key, where the field name cannot be it
    nullable: bool = False  # `X | None` written as null (a required-nullable key) instead of omitted
    omit_empty: bool = False  # an empty list is left off the wire, as Go's omitempty does


def _wire(*, key: str | None = None, nullable: bool = False, omit_empty: bool = False) -> dict[str, Any]:
    """Field metadata for what a field's type alone does not say about its wire form."""
    return {_WIRE_METADATA: _WireOptions(key, nullable, omit_empty)}


_Reader = Callable[[dict[str, Any], str, str], Any]  # (object, key, path) -> field value
_Writer = Callable[[Any], Any]  # field value -> JSON value


@dataclass(frozen=True, slots=True)
class _FieldCodec:
    name: str
    key: str
    read: _Reader
    write: _Writer
    omit: Callable[[Any], bool]  # leave the key off the wire for this value


def _is_none(value: Any) -> bool:
    return value is None


def _is_empty(value: Any) -> bool:
    return not value


def _never(value: Any) -> bool:
    return False


def _same(value: Any) -> Any:
    return value


def _to_wire(value: Payload) -> dict[str, Any]:
    return value.to_wire()


def _list_to_wire(values: tuple[Payload, ...]) -> list[dict[str, Any]]:
    return [value.to_wire() for value in values]


def _converters(hint: Any, optional: bool) -> tuple[_Reader, _Writer]:
    """Reader and writer for a field annotated `hint` (`optional`: it was `hint | None`)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is str:
        return (_opt_str if optional else _str), _same
    if hint is int:
        return (_opt_int if optional else _int), _same
    if hint is float and not optional:
        return _float, float
    if hint is Any:
        return _any, wire.canonical
    if origin is dict:
        return (_opt_map if optional else _map), wire.canonical
    if origin is tuple and args[1:] == (Ellipsis,) and not optional:
        if args[0] is str:
            return _str_list, list
        if isinstance(args[0], type) and issubclass(args[0], Payload):
            return functools.partial(_nested_list, args[0]), _list_to_wire
    if isinstance(hint, type) and issubclass(hint, Payload):
        return functools.partial(_opt_nested if optional else _nested, hint), _to_wire
    raise TypeError(f"no wire form for a field of type {hint!r}")


def _field_codec(spec: dataclasses.Field[Any], hint: Any) -> _FieldCodec:
    options: _WireOptions = spec.metadata.get(_WIRE_METADATA, _WireOptions())
    args = typing.get_args(hint)
    optional = typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args
    if optional:
        (hint,) = (arg for arg in args if arg is not type(None))
    read, write = _converters(hint, optional)
    if optional or hint is Any:
        # Only a nullable key carries null; every other absent value is left off the wire.
        inner = write
        write = functools.partial(_write_nullable, inner)
        omit = _never if options.nullable else _is_none
    else:
        omit = _is_empty if options.omit_empty else _never
    return _FieldCodec(spec.name, options.key or spec.name, read, write, omit)


def _write_nullable(write: _Writer, value: Any) -> Any:
    return None if value is None else write(value)


_FIELD_CODECS: dict[type[Any], tuple[_FieldCodec, ...]] = {}


def _field_codecs(cls: type[Any]) -> tuple[_FieldCodec, ...]:
    """The wire form of a payload type, in declared field order, derived once and kept."""
    codecs = _FIELD_CODECS.get(cls)
    if codecs is None:
        hints = typing.get_type_hints(cls)
        codecs = tuple(_field_codec(spec, hints[spec.name]) for spec in dataclasses.fields(cls))
        _FIELD_CODECS[cls] = codecs
    return codecs


# ---------------------------------------------------------------------------------------- validators


def _min_length(name: str, value: str, minimum: int = 1) -> None:
    if len(value) < minimum:
        raise PayloadValidationError(f"{name} must contain at least {minimum} character(s)")


def _nonzero(name: str, value: int) -> None:
    if value == 0:
        raise PayloadValidationError(f"{name} must be non-zero")


def _at_least(name: str, value: int, minimum: int) -> None:
    if value < minimum:
        raise PayloadValidationError(f"{name} must be >= {minimum}")


def _not_before(upper_name: str, upper: int, lower_name: str, lower: int) -> None:
    if upper < lower:
        raise PayloadValidationError(f"{upper_name} must be greater than or equal to {lower_name}")


# ------------------------------------------------------------------------------------------ base type


class Payload:
    """Base of every catalog type: `from_wire` decodes and validates, `to_wire` validates and encodes."""

    __slots__ = ()

    @classmethod
    def from_wire(cls, obj: Any) -> Self:
        """Decode a parsed JSON value (`None` or absent counts as `{}`), then validate it."""
        return cls._parse(obj, cls.__name__)

    @classmethod
    def _parse(cls, obj: Any, label: str) -> Self:
        try:
            value = cls._decode(_object(obj, ""), "")
        except _MalformedError as exc:
            raise PayloadDecodeError(f"decode {label}: {exc}") from None
        value.validate()
        return value

    @classmethod
    def _decode(cls, obj: dict[str, Any], path: str) -> Self:
        return cls(**{f.name: f.read(obj, f.key, path) for f in _field_codecs(cls)})

    def validate(self) -> None:
        """Check the catalog's semantic rules; raises `PayloadValidationError`."""

    def to_wire(self) -> dict[str, Any]:
        """The JSON object to send, fields in wire order (validates first: strict on output)."""
        self.validate()
        return self._encode()

    def _encode(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in _field_codecs(type(self)):
            value = getattr(self, f.name)
            if not f.omit(value):
                out[f.key] = f.write(value)
        return out


# -------------------------------------------------------------------------------------- shared types


@dataclass(frozen=True, slots=True)
class AppInfo(Payload):
    id: str


@dataclass(frozen=True, slots=True)
class CallInfo(Payload):
    id: str
    session_id: str  # owned by the voice peer
    from_: str = field(metadata=_wire(key="from"))  # `from` is a Python keyword
    to: str


@dataclass(frozen=True, slots=True)
class AudioCodec(Payload):
    id: str  # "<name>/<sample_rate>/<channels>", e.g. "L16/8000/1"
    name: str
    sample_rate: int
    bit_depth: int
    channels: int


@dataclass(frozen=True, slots=True)
class AudioInfoItem(Payload):
    bytes: int  # in the last reporting interval
    bytes_per_second: float  # the only float of the catalog; Go spells 12800.0 as 12800
    bytes_total: int


@dataclass(frozen=True, slots=True)
class EmptyResponse(Payload):
    """`{}`: the result of operations without result fields."""


# -------------------------------------------------------------------------------------- operations


@dataclass(frozen=True, slots=True)
class SessionInitializeRequest(Payload):
    application: AppInfo
    call: CallInfo
    audio_codec_offerings: tuple[AudioCodec, ...]
    metadata: dict[str, Any] | None = field(default=None, metadata=_wire(nullable=True))


@dataclass(frozen=True, slots=True)
class SessionInitializeResponse(Payload):
    # Real voices need a concrete offered codec.
    audio_codec: AudioCodec | None = field(metadata=_wire(nullable=True))


@dataclass(frozen=True, slots=True)
class SessionTerminateRequest(Payload):
    reason: str

    def validate(self) -> None:
        _min_length("reason", self.reason)


@dataclass(frozen=True, slots=True)
class PingRequest(Payload):
    t0: int  # sender's epoch ms
    rtt: int | None = None  # round trip of the previous ping; None = absent
    data: Any = None  # free-form, echoed by the peer; None = absent

    def validate(self) -> None:
        _nonzero("t0", self.t0)


@dataclass(frozen=True, slots=True)
class PingResponse(Payload):
    t0: int  # echo of the request's t0
    t1: int  # epoch ms when the request frame was received
    t2: int  # epoch ms when it was handled
    owd: int  # t2 - t0; may be negative with skewed clocks
    data: Any = None  # echo of the request's data; None = absent

    def validate(self) -> None:
        _nonzero("t0", self.t0)
        _nonzero("t1", self.t1)
        _nonzero("t2", self.t2)


@dataclass(frozen=True, slots=True)
class ApplicationMoveRequest(Payload):
    reason: str | None = None
    application_id: str | None = None  # None: advance the IVR flow normally


@dataclass(frozen=True, slots=True)
class ApplicationMoveResponse(Payload):
    next_application_id: str | None = None


@dataclass(frozen=True, slots=True)
class CallHangupRequest(Payload):
    reason: str

    def validate(self) -> None:
        _min_length("reason", self.reason)


@dataclass(frozen=True, slots=True)
class AudioBufferClearRequest(Payload):
    """`{}`: discard application audio the voice buffered but has not played yet (barge-in)."""


@dataclass(frozen=True, slots=True)
class AudioBufferClearResponse(Payload):
    len: int  # buffered bytes the voice discarded


@dataclass(frozen=True, slots=True)
class RecordingStartRequest(Payload):
    tags: tuple[str, ...] = field(default=(), metadata=_wire(omit_empty=True))


@dataclass(frozen=True, slots=True)
class RecordingStartResponse(Payload):
    id: str

    def validate(self) -> None:
        _min_length("id", self.id)


@dataclass(frozen=True, slots=True)
class RecordingStopRequest(Payload):
    id: str

    def validate(self) -> None:
        _min_length("id", self.id)


@dataclass(frozen=True, slots=True)
class SessionGetRequest(Payload):
    keys: tuple[str, ...] = ()  # empty: all variables (sent as [], never null)


@dataclass(frozen=True, slots=True)
class SessionGetResponse(Payload):
    """The result is the variables map itself, with no wrapper object."""

    values: dict[str, Any]

    @classmethod
    def _decode(cls, obj: dict[str, Any], path: str) -> Self:
        return cls(values=obj)

    def _encode(self) -> dict[str, Any]:
        encoded: dict[str, Any] = wire.canonical(self.values)
        return encoded


@dataclass(frozen=True, slots=True)
class SessionSetRequest(Payload):
    data: dict[str, Any]


# ------------------------------------------------------------------------------------------ events


@dataclass(frozen=True, slots=True)
class SessionUpdatedEvent(Payload):
    audio_codec: AudioCodec | None = field(metadata=_wire(nullable=True))  # echoes the codec we selected


@dataclass(frozen=True, slots=True)
class DtmfEvent(Payload):
    seq: int  # from 0, per session
    pressed_at: int  # epoch ms
    released_at: int  # epoch ms
    digit: str

    def validate(self) -> None:
        _at_least("seq", self.seq, 0)
        _at_least("pressed_at", self.pressed_at, 0)
        _at_least("released_at", self.released_at, 0)
        _min_length("digit", self.digit)
        _not_before("released_at", self.released_at, "pressed_at", self.pressed_at)


@dataclass(frozen=True, slots=True)
class CallHangupEvent(Payload):
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class AudioInfoEvent(Payload):
    read: AudioInfoItem  # diagnostic counters; the read/write direction wording is ambiguous upstream
    write: AudioInfoItem


@dataclass(frozen=True, slots=True)
class AudioSpeechStartedEvent(Payload):
    origin: str  # "sender" or "receiver"


@dataclass(frozen=True, slots=True)
class OutputTranscriptDeltaEvent(Payload):
    delta: str


@dataclass(frozen=True, slots=True)
class OutputTranscriptDoneEvent(Payload):
    """Three states: `text=None` (absent: keep the accumulated deltas), `""`, or the full text."""

    text: str | None = None


@dataclass(frozen=True, slots=True)
class InputTranscriptEvent(Payload):
    delta: str  # the complete finalised utterance, despite the legacy key name


@dataclass(frozen=True, slots=True)
class AgentToolCallEvent(Payload):
    name: str  # tool name only; arguments and results are deliberately never sent


# ---------------------------------------------------------------------------------------- registry

Role = Literal["voice", "application"]


@dataclass(frozen=True)
class OperationSpec:
    method: str
    handled_by: Literal["voice", "application", "both"]
    terminal: bool  # the handler replies, flushes, then closes the session
    request: type[Payload]
    response: type[Payload]


@dataclass(frozen=True)
class EventSpec:
    name: str
    emitted_by: Role
    data: type[Payload]


_S = TypeVar("_S", OperationSpec, EventSpec)


def _index(specs: tuple[_S, ...], key: Callable[[_S], str]) -> Mapping[str, _S]:
    return MappingProxyType({key(spec): spec for spec in specs})


OPERATIONS: Final[Mapping[str, OperationSpec]] = _index(
    (
        OperationSpec("application.move", "voice", True, ApplicationMoveRequest, ApplicationMoveResponse),
        OperationSpec(
            "audio.buffer.clear", "voice", False, AudioBufferClearRequest, AudioBufferClearResponse
        ),
        OperationSpec("call.hangup", "voice", True, CallHangupRequest, EmptyResponse),
        OperationSpec("ping", "both", False, PingRequest, PingResponse),
        OperationSpec("recording.start", "voice", False, RecordingStartRequest, RecordingStartResponse),
        OperationSpec("recording.stop", "voice", False, RecordingStopRequest, EmptyResponse),
        OperationSpec("session.get", "voice", False, SessionGetRequest, SessionGetResponse),
        OperationSpec(
            "session.initialize",
            "application",
            False,
            SessionInitializeRequest,
            SessionInitializeResponse,
        ),
        OperationSpec("session.set", "voice", False, SessionSetRequest, EmptyResponse),
        OperationSpec("session.terminate", "application", True, SessionTerminateRequest, EmptyResponse),
    ),
    lambda spec: spec.method,
)

EVENTS: Final[Mapping[str, EventSpec]] = _index(
    (
        EventSpec("agent.tool.call", "application", AgentToolCallEvent),
        EventSpec("audio.info", "voice", AudioInfoEvent),
        EventSpec("audio.speech.started", "application", AudioSpeechStartedEvent),
        EventSpec("call.hangup", "voice", CallHangupEvent),
        EventSpec("dtmf", "voice", DtmfEvent),
        EventSpec("input.transcript", "application", InputTranscriptEvent),
        EventSpec("output.transcript.delta", "application", OutputTranscriptDeltaEvent),
        EventSpec("output.transcript.done", "application", OutputTranscriptDoneEvent),
        EventSpec("session.updated", "voice", SessionUpdatedEvent),
    ),
    lambda spec: spec.name,
)


# Derive every wire form now: a field type without one fails at import, not on a live call.
for _operation in OPERATIONS.values():
    _field_codecs(_operation.request)
    _field_codecs(_operation.response)
for _event in EVENTS.values():
    _field_codecs(_event.data)


def decode_params(method: str, params: Any) -> Payload:
    """Typed, validated request params; errors read `decode <method> request: ...` like the Go SDK."""
    spec = OPERATIONS.get(method)
    if spec is None:
        raise PayloadDecodeError(f"decode {method} request: unknown method")
    return spec.request._parse(params, f"{method} request")


def decode_result(method: str, result: Any) -> Payload:
    """Typed, validated result of a request we sent (an absent or null result counts as `{}`)."""
    spec = OPERATIONS.get(method)
    if spec is None:
        raise PayloadDecodeError(f"decode {method} response: unknown method")
    return spec.response._parse(result, f"{method} response")


def decode_event_data(event: str, data: Any) -> Payload:
    """Typed, validated event data (absent or null counts as `{}`)."""
    spec = EVENTS.get(event)
    if spec is None:
        raise PayloadDecodeError(f"decode {event} event: unknown event")
    return spec.data._parse(data, f"{event} event")
