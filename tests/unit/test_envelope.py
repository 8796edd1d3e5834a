"""classic.v1 envelope: decode rules and frozen quirks (protocol.md §2.3/§2.4), exact encoding."""

from __future__ import annotations

import contextlib
import copy
import json
import pickle
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bridge.protocol import wire
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


def frame(**fields: Any) -> str:
    return json.dumps({"version": "1", **fields})


# ------------------------------------------------------------------------------------------ ABSENT


def test_absent_is_a_falsy_singleton_that_survives_copies() -> None:
    assert repr(ABSENT) == "ABSENT"
    assert not ABSENT
    assert ABSENT is not None
    assert type(ABSENT)() is ABSENT
    assert copy.copy(ABSENT) is ABSENT
    assert copy.deepcopy(ABSENT) is ABSENT
    assert pickle.loads(pickle.dumps(ABSENT)) is ABSENT


# ----------------------------------------------------------------------------------- decode: shapes


def test_decode_request_event_response() -> None:
    assert decode_frame(frame(id="r1", method="ping", params={"t0": 1})) == Request("r1", "ping", {"t0": 1})
    assert decode_frame(frame(id="e1", event="dtmf", data={"digit": "5"})) == Event(
        "e1", "dtmf", {"digit": "5"}
    )
    assert decode_frame(frame(response="r1", result={})) == Response("r1", result={})


def test_payload_presence_is_kept() -> None:
    assert decode_frame(frame(id="r", method="m")) == Request("r", "m", ABSENT)
    assert decode_frame(frame(id="r", method="m", params=None)) == Request("r", "m", None)
    assert decode_frame(frame(id="e", event="x")) == Event("e", "x", ABSENT)
    assert decode_frame(frame(id="e", event="x", data=None)) == Event("e", "x", None)


def test_decode_accepts_bytes() -> None:
    assert decode_frame(frame(id="r", method="m").encode()) == Request("r", "m")


def test_unknown_keys_are_ignored_and_version_need_not_come_first() -> None:
    text = '{"id":"r","x-trace":{"a":1},"method":"m","version":"1","extra":[1]}'
    assert decode_frame(text) == Request("r", "m")


# ---------------------------------------------------------------------------------- decode: version


@pytest.mark.parametrize("version", [1, "1.0", "invalid", "", None, ["1"], True, " 1"])
def test_version_must_be_the_string_1(version: Any) -> None:
    with pytest.raises(EnvelopeError, match="version"):
        decode_frame(json.dumps({"version": version, "id": "r", "method": "m"}))


def test_missing_version_is_rejected() -> None:
    with pytest.raises(EnvelopeError, match="version"):
        decode_frame('{"id":"r","method":"m"}')


# ---------------------------------------------------------------------------- decode: discriminators


def test_precedence_is_event_then_request_then_response() -> None:
    text = frame(event="ev", id="i", data={}, method="me", params={}, response="re", result={})
    assert decode_frame(text) == Event("i", "ev", {})
    assert decode_frame(frame(id="i", method="me", response="re")) == Request("i", "me")


@pytest.mark.parametrize("bad", ["", 5, None, True, [], {}, ["ev"]])
def test_non_string_or_empty_discriminator_falls_through(bad: Any) -> None:
    assert decode_frame(frame(event=bad, id="i", method="m")) == Request("i", "m")
    assert decode_frame(frame(event=bad, method=bad, response="r")) == Response("r")
    with pytest.raises(EnvelopeError, match="discriminator"):
        decode_frame(frame(event=bad, method=bad, response=bad, id="i"))


def test_missing_discriminator_is_rejected() -> None:
    with pytest.raises(EnvelopeError, match="discriminator"):
        decode_frame(frame(id="i", params={}))


@pytest.mark.parametrize("bad_id", [7, 0, "", None, True, ["a"], {"a": 1}])
@pytest.mark.parametrize("kind", ["event", "method"])
def test_event_and_request_need_a_non_empty_string_id(kind: str, bad_id: Any) -> None:
    with pytest.raises(EnvelopeError, match="id"):
        decode_frame(frame(**{kind: "x", "id": bad_id}))
    with pytest.raises(EnvelopeError, match="id"):
        decode_frame(frame(**{kind: "x"}))


def test_response_carries_no_id_of_its_own() -> None:
    decoded = decode_frame(frame(response="req-1", id=42, result=1))
    assert decoded == Response("req-1", result=1)


@pytest.mark.parametrize("text", ["[]", '"x"', "1", "null", "true", '[{"version":"1"}]'])
def test_frame_must_be_an_object(text: str) -> None:
    with pytest.raises(EnvelopeError, match="object"):
        decode_frame(text)


@pytest.mark.parametrize(
    "raw",
    [b"{", b"\xff\xfe", b'{"version":"1","version":"1","id":"r","method":"m"}', b"[" * 100_000, b""],
)
def test_malformed_input_raises_envelope_error_wrapping_wire_error(raw: bytes) -> None:
    with pytest.raises(EnvelopeError) as raised:
        decode_frame(raw)
    assert isinstance(raised.value.__cause__, wire.WireError)


# ------------------------------------------------------------------------------- decode: responses


def test_response_with_neither_result_nor_error_is_success() -> None:
    decoded = decode_frame(frame(response="r"))
    assert decoded == Response("r", ABSENT, None)
    assert isinstance(decoded, Response) and decoded.ok


def test_null_result_is_kept_distinct_from_absent() -> None:
    decoded = decode_frame(frame(response="r", result=None))
    assert isinstance(decoded, Response)
    assert decoded.result is None and decoded.result is not ABSENT and decoded.ok


def test_null_error_means_no_error() -> None:
    decoded = decode_frame(frame(response="r", result={"a": 1}, error=None))
    assert decoded == Response("r", {"a": 1}, None)
    assert isinstance(decoded, Response) and decoded.ok


def test_both_result_and_error_is_a_failure_that_keeps_the_result() -> None:
    decoded = decode_frame(frame(response="r", result={"len": 1}, error={"code": 500, "message": "boom"}))
    assert isinstance(decoded, Response)
    assert not decoded.ok
    assert decoded.result == {"len": 1}
    assert decoded.error == ErrorObject(500, "boom")


def test_error_data_travels_under_any() -> None:
    text = frame(response="r", error={"code": 400, "message": "m", "any": {"f": 1}, "data": "ignored"})
    decoded = decode_frame(text)
    assert isinstance(decoded, Response)
    assert decoded.error == ErrorObject(400, "m", {"f": 1})
    null_data = decode_frame(frame(response="r", error={"code": 400, "message": "m", "any": None}))
    assert isinstance(null_data, Response) and null_data.error == ErrorObject(400, "m", None)


@pytest.mark.parametrize("code", [-1, 400, 500, 501, 2**53 - 1, -(2**63), 42])
def test_any_non_zero_integer_is_an_error_code(code: int) -> None:
    decoded = decode_frame(frame(response="r", error={"code": code, "message": "m"}))
    assert isinstance(decoded, Response) and decoded.error == ErrorObject(code, "m")


@pytest.mark.parametrize(
    "error",
    [
        {"code": 0, "message": "m"},
        {"code": True, "message": "m"},
        {"code": False, "message": "m"},
        {"code": "400", "message": "m"},
        {"code": 400.0, "message": "m"},
        {"code": None, "message": "m"},
        {"message": "m"},
        {"code": 400, "message": ""},
        {"code": 400, "message": 5},
        {"code": 400},
        "boom",
        [400, "m"],
        400,
        False,
    ],
)
def test_invalid_error_object_makes_the_frame_undecodable(error: Any) -> None:
    with pytest.raises(EnvelopeError, match="error"):
        decode_frame(frame(response="r", error=error))


# ------------------------------------------------------------------------------------------ encode


def test_encode_exact_key_order() -> None:
    assert encode_frame(Request("i", "m", {"b": 1, "a": 2})) == (
        '{"version":"1","id":"i","method":"m","params":{"b":1,"a":2}}'
    )
    assert encode_frame(Event("i", "e", {"x": 1})) == '{"version":"1","id":"i","event":"e","data":{"x":1}}'
    both = Response("i", result={"r": 1}, error=ErrorObject(-1, "m", {"d": 2}))
    assert encode_frame(both) == (
        '{"version":"1","response":"i","result":{"r":1},"error":{"code":-1,"message":"m","any":{"d":2}}}'
    )


def test_encode_presence() -> None:
    assert encode_frame(Request("i", "m")) == '{"version":"1","id":"i","method":"m"}'
    assert encode_frame(Request("i", "m", None)) == '{"version":"1","id":"i","method":"m","params":null}'
    assert encode_frame(Event("i", "e")) == '{"version":"1","id":"i","event":"e"}'
    assert encode_frame(Response("i")) == '{"version":"1","response":"i"}'
    assert encode_frame(Response("i", None)) == '{"version":"1","response":"i","result":null}'
    assert encode_frame(Response("i", error=ErrorObject(1, "m", None))) == (
        '{"version":"1","response":"i","error":{"code":1,"message":"m","any":null}}'
    )


@pytest.mark.parametrize(
    "bad",
    [
        Request("", "m"),
        Request("i", ""),
        Event("", "e"),
        Event("i", ""),
        Response(""),
        Response("i", error=ErrorObject(0, "m")),
        Response("i", error=ErrorObject(True, "m")),
        Response("i", error=ErrorObject(400, "")),
        Request(5, "m"),  # type: ignore[arg-type]
        Request("i", "m", {"x": float("nan")}),
        Request("i", "m", {"x": 2**60}),
        Event("i", "e", {1: "non-string key"}),
        Response("i", result={"s": "\ud800"}),
    ],
)
def test_encode_refuses_what_must_not_be_sent(bad: Frame) -> None:
    with pytest.raises(EnvelopeError):
        encode_frame(bad)


def test_encode_rejects_non_frames() -> None:
    with pytest.raises(EnvelopeError):
        encode_frame({"version": "1"})  # type: ignore[arg-type]


def test_frames_are_frozen_and_slotted() -> None:
    request = Request("i", "m")
    with pytest.raises(AttributeError):
        request.id = "other"  # type: ignore[misc]
    assert not hasattr(request, "__dict__")


# ------------------------------------------------------------------------------------- properties

json_scalar = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15).filter(
        lambda f: f != 0
    )
    | st.text(max_size=10)
)
json_value = st.recursive(
    json_scalar,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
    max_leaves=20,
)
frame_id = st.text(min_size=1, max_size=12)
maybe = st.one_of(st.just(ABSENT), json_value)

error_code = st.integers(min_value=1, max_value=2**53 - 1) | st.integers(min_value=-(2**53) + 1, max_value=-1)
error_object = st.builds(ErrorObject, error_code, st.text(min_size=1, max_size=10), maybe)
frames = st.one_of(
    st.builds(Request, frame_id, frame_id, maybe),
    st.builds(Event, frame_id, frame_id, maybe),
    st.builds(Response, frame_id, maybe, st.none() | error_object),
)


@given(frames)
def test_encode_decode_round_trip(value: Frame) -> None:
    text = encode_frame(value)
    assert decode_frame(text) == value
    assert decode_frame(text.encode("utf-8")) == value
    assert encode_frame(decode_frame(text)) == text


envelope_keys = st.sampled_from(["version", "id", "event", "method", "response", "result", "error", "data"])
frame_like = st.dictionaries(
    envelope_keys,
    st.one_of(
        json_value,
        st.sampled_from(["1", "", "x", 1]),
        st.fixed_dictionaries({"code": json_value}),
        st.fixed_dictionaries(
            {"code": st.sampled_from([0, 1, True, 2.0]), "message": st.sampled_from(["", "m"])}
        ),
    ),
    max_size=8,
).map(lambda d: {"version": "1", **d} if len(d) % 2 else d)


def expected_frame(obj: dict[str, Any]) -> Frame | None:
    """The envelope rules (RTVBP v1) read independently: version "1"; the first non-empty string among
    event, method, response says the kind; events and requests need a non-empty string id; an error is
    null or {code: non-zero integer, message: non-empty string, ...}. None: the frame must be refused."""

    def name(value: Any) -> bool:
        return isinstance(value, str) and value != ""

    if obj.get("version") != "1" or not isinstance(obj.get("version"), str):
        return None
    for kind in ("event", "method", "response"):
        if name(obj.get(kind)):
            break
    else:
        return None
    if kind == "response":
        error = obj.get("error")
        if error is None:  # absent or null
            return Response(obj["response"], obj.get("result", ABSENT), None)
        code = error.get("code") if isinstance(error, dict) else None
        if type(code) is not int or code == 0 or not name(error.get("message")):
            return None
        data = error.get("any", ABSENT)  # the error's data travels under the frozen key "any"
        return Response(obj["response"], obj.get("result", ABSENT), ErrorObject(code, error["message"], data))
    if not name(obj.get("id")):
        return None
    if kind == "event":
        return Event(obj["id"], obj["event"], obj.get("data", ABSENT))
    return Request(obj["id"], obj["method"], obj.get("params", ABSENT))


@settings(max_examples=400)
@given(frame_like)
@example({"version": 1, "id": "a", "event": "e"})
@example({"version": "1", "id": "", "method": "m"})
@example({"version": "1", "id": "a", "event": "", "method": "m"})
@example({"version": "1", "response": "r", "error": {"code": 0, "message": "m"}})
@example({"version": "1", "response": "r", "error": {"code": True, "message": "m"}})
@example({"version": "1", "response": "r", "error": {"code": 7, "message": "m", "any": [1]}})
def test_decode_accepts_exactly_the_frames_the_rules_allow(obj: dict[str, Any]) -> None:
    expected = expected_frame(obj)
    try:
        decoded = decode_frame(json.dumps(obj))
    except EnvelopeError:
        assert expected is None, f"refused a valid frame {obj!r}"
        return
    assert expected is not None, f"accepted an invalid frame {obj!r}"
    assert decoded == expected
    assert decode_frame(encode_frame(decoded)) == decoded  # whatever decodes can be re-sent as is


@settings(max_examples=300)
@given(st.text() | st.binary())
def test_decode_only_raises_envelope_error_on_any_input(raw: str | bytes) -> None:
    with contextlib.suppress(EnvelopeError):
        decode_frame(raw)
