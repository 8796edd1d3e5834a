"""The `classic.v1` envelope: one flat JSON object per WebSocket text message.

Frozen "quirks included" (protocol.md §2.3/§2.4): `version` is the string "1"; shapes are told apart
by their discriminator in the order event -> request -> response, and a discriminator counts only as a
non-empty string; responses carry no id of their own; error data travels under the key `any`; a
response may hold both `result` and `error` (the error wins) or neither (success); `"result": null`
is kept distinct from an absent result while `"error": null` means no error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Final, NoReturn, TypeGuard

from bridge.protocol import wire

__all__ = [
    "ABSENT",
    "VERSION",
    "EnvelopeError",
    "ErrorObject",
    "Event",
    "Frame",
    "Request",
    "Response",
    "decode_frame",
    "encode_frame",
]

VERSION: Final = "1"


class _Absent:
    """Marks a key that was not on the wire, as opposed to one holding JSON `null`."""

    _instance: ClassVar[_Absent | None] = None
    __slots__ = ()

    def __new__(cls) -> _Absent:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ABSENT"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "ABSENT"  # pickles/copies as the module-level singleton


ABSENT: Final[_Absent] = _Absent()


class EnvelopeError(ValueError):
    """A frame that cannot be decoded (drop it, no response possible) or must not be sent."""


@dataclass(frozen=True, slots=True)
class ErrorObject:
    code: int
    message: str
    data: Any = ABSENT  # serialised under the frozen wire key "any"


@dataclass(frozen=True, slots=True)
class Request:
    id: str
    method: str
    params: Any = ABSENT


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    event: str
    data: Any = ABSENT


@dataclass(frozen=True, slots=True)
class Response:
    response: str  # the id of the request answered
    result: Any = ABSENT
    error: ErrorObject | None = None

    @property
    def ok(self) -> bool:
        """Success unless an error is present, even when a result came with it."""
        return self.error is None


Frame = Request | Event | Response


def _fail(message: str) -> NoReturn:
    raise EnvelopeError(message)


def _is_name(value: object) -> TypeGuard[str]:
    return type(value) is str and value != ""


def _valid_code(code: object) -> TypeGuard[int]:
    return type(code) is int and code != 0


# -------------------------------------------------------------------------------------------- decode


def _decode_error(value: Any) -> ErrorObject | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        _fail("error must be an object")
    code = value.get("code")
    if not _valid_code(code):
        _fail("error.code must be a non-zero integer")
    message = value.get("message")
    if not _is_name(message):
        _fail("error.message must be a non-empty string")
    return ErrorObject(code=code, message=message, data=value.get("any", ABSENT))


def _decode_id(obj: dict[str, Any]) -> str:
    frame_id = obj.get("id")
    if not _is_name(frame_id):
        _fail("id must be a non-empty string")
    return frame_id


def decode_frame(text: str | bytes) -> Frame:
    """Decode one text message; raises only `EnvelopeError`."""
    try:
        obj = wire.loads(text)
    except wire.WireError as exc:
        raise EnvelopeError(str(exc)) from exc
    if not isinstance(obj, dict):
        _fail("frame must be a JSON object")
    if obj.get("version") != VERSION or type(obj.get("version")) is not str:
        _fail('version must be the string "1"')
    event = obj.get("event")
    if _is_name(event):
        return Event(id=_decode_id(obj), event=event, data=obj.get("data", ABSENT))
    method = obj.get("method")
    if _is_name(method):
        return Request(id=_decode_id(obj), method=method, params=obj.get("params", ABSENT))
    response = obj.get("response")
    if _is_name(response):
        return Response(
            response=response,
            result=obj.get("result", ABSENT),
            error=_decode_error(obj.get("error")),
        )
    _fail("frame has no event, method or response discriminator")


# -------------------------------------------------------------------------------------------- encode


def _wire_error(error: ErrorObject) -> dict[str, Any]:
    if not _valid_code(error.code):
        _fail("error.code must be a non-zero integer")
    if not _is_name(error.message):
        _fail("error.message must be a non-empty string")
    obj: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.data is not ABSENT:
        obj["any"] = error.data
    return obj


def _wire_frame(frame: Frame) -> dict[str, Any]:
    if isinstance(frame, Request):
        if not _is_name(frame.id) or not _is_name(frame.method):
            _fail("request id and method must be non-empty strings")
        obj: dict[str, Any] = {"version": VERSION, "id": frame.id, "method": frame.method}
        if frame.params is not ABSENT:
            obj["params"] = frame.params
        return obj
    if isinstance(frame, Event):
        if not _is_name(frame.id) or not _is_name(frame.event):
            _fail("event id and name must be non-empty strings")
        obj = {"version": VERSION, "id": frame.id, "event": frame.event}
        if frame.data is not ABSENT:
            obj["data"] = frame.data
        return obj
    if isinstance(frame, Response):
        if not _is_name(frame.response):
            _fail("response id must be a non-empty string")
        obj = {"version": VERSION, "response": frame.response}
        if frame.result is not ABSENT:
            obj["result"] = frame.result
        if frame.error is not None:
            obj["error"] = _wire_error(frame.error)
        return obj
    _fail(f"not a frame: {type(frame).__name__}")


def encode_frame(frame: Frame) -> str:
    """Serialise with the exact classic.v1 key order; raises only `EnvelopeError`."""
    try:
        return wire.dumps(_wire_frame(frame))
    except wire.WireError as exc:
        raise EnvelopeError(str(exc)) from exc
