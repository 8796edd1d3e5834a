"""`envelope/classic.v1/frames.json`: encode, decode and invalid cases.

Vectors describe frames semantically (`{"kind": ..., "error": {"code", "message", "data"?}}`); the
semantic `error.data` is the wire key `any`. Presence matters: an absent result is not a null result.
"""

from __future__ import annotations

from typing import Any

import pytest

from bridge.protocol.envelope import (
    ABSENT,
    EnvelopeError,
    ErrorObject,
    Event,
    Frame,
    Request,
    Response,
    decode_frame,
    encode_frame,
)


def _frame_from_vector(semantic: dict[str, Any]) -> Frame:
    kind = semantic["kind"]
    if kind == "request":
        return Request(id=semantic["id"], method=semantic["method"], params=semantic.get("params", ABSENT))
    if kind == "event":
        return Event(id=semantic["id"], event=semantic["event"], data=semantic.get("data", ABSENT))
    assert kind == "response", kind
    error = semantic.get("error")
    return Response(
        response=semantic["response"],
        result=semantic.get("result", ABSENT),
        error=None
        if error is None
        else ErrorObject(code=error["code"], message=error["message"], data=error.get("data", ABSENT)),
    )


def _vector_from_frame(frame: Frame) -> dict[str, Any]:
    """Our frame in the vectors' semantic notation, keys present exactly when present on the wire."""
    out: dict[str, Any]
    if isinstance(frame, Request):
        out = {"kind": "request", "id": frame.id, "method": frame.method}
        if frame.params is not ABSENT:
            out["params"] = frame.params
    elif isinstance(frame, Event):
        out = {"kind": "event", "id": frame.id, "event": frame.event}
        if frame.data is not ABSENT:
            out["data"] = frame.data
    else:
        out = {"kind": "response", "response": frame.response}
        if frame.result is not ABSENT:
            out["result"] = frame.result
        if frame.error is not None:
            error: dict[str, Any] = {"code": frame.error.code, "message": frame.error.message}
            if frame.error.data is not ABSENT:
                error["data"] = frame.error.data
            out["error"] = error
    return out


def test_frame_vector(frame_case: Any) -> None:
    if frame_case.section == "invalid":
        with pytest.raises(EnvelopeError):
            decode_frame(frame_case.bytes)
        with pytest.raises(EnvelopeError):
            decode_frame(frame_case.bytes.encode("utf-8"))
        return
    expected = frame_case.frame
    if frame_case.section == "encode":
        assert encode_frame(_frame_from_vector(expected)) == frame_case.bytes
    decoded = decode_frame(frame_case.bytes)
    assert _vector_from_frame(decoded) == expected
    assert decoded == _frame_from_vector(expected)
    if frame_case.section == "decode" and frame_case.frame["kind"] == "response":
        assert decoded.ok is (expected.get("error") is None)
