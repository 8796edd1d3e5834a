"""babelforce.v1 catalog: validation rules, lenient decoding, strict encoding, registry."""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.protocol import catalog, wire
from bridge.protocol.catalog import (
    AgentToolCallEvent,
    AppInfo,
    ApplicationMoveRequest,
    ApplicationMoveResponse,
    AudioBufferClearRequest,
    AudioBufferClearResponse,
    AudioCodec,
    AudioInfoEvent,
    AudioInfoItem,
    AudioSpeechStartedEvent,
    CallHangupEvent,
    CallHangupRequest,
    CallInfo,
    DtmfEvent,
    EmptyResponse,
    InputTranscriptEvent,
    OutputTranscriptDeltaEvent,
    OutputTranscriptDoneEvent,
    PayloadDecodeError,
    PayloadValidationError,
    PingRequest,
    PingResponse,
    RecordingStartRequest,
    RecordingStartResponse,
    RecordingStopRequest,
    SessionGetRequest,
    SessionGetResponse,
    SessionInitializeRequest,
    SessionInitializeResponse,
    SessionSetRequest,
    SessionTerminateRequest,
    SessionUpdatedEvent,
)
from bridge.protocol.envelope import ABSENT

L16 = AudioCodec(id="L16/8000/1", name="L16", sample_rate=8000, bit_depth=16, channels=1)
L16_WIRE = {"id": "L16/8000/1", "name": "L16", "sample_rate": 8000, "bit_depth": 16, "channels": 1}
PAYLOAD_TYPES = [
    cls
    for _, cls in inspect.getmembers(catalog, inspect.isclass)
    if issubclass(cls, catalog.Payload) and cls is not catalog.Payload
]


def encoded(payload: catalog.Payload) -> str:
    return wire.dumps(payload.to_wire())


# -------------------------------------------------------------------------------- validation rules


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (SessionTerminateRequest(reason=""), "reason must contain at least 1 character(s)"),
        (CallHangupRequest(reason=""), "reason must contain at least 1 character(s)"),
        (RecordingStopRequest(id=""), "id must contain at least 1 character(s)"),
        (RecordingStartResponse(id=""), "id must contain at least 1 character(s)"),
        (PingRequest(t0=0), "t0 must be non-zero"),
        (PingRequest(t0=0, rtt=5, data={"a": 1}), "t0 must be non-zero"),
        (PingResponse(t0=0, t1=1, t2=2, owd=2), "t0 must be non-zero"),
        (PingResponse(t0=1, t1=0, t2=2, owd=1), "t1 must be non-zero"),
        (PingResponse(t0=1, t1=1, t2=0, owd=-1), "t2 must be non-zero"),
        (DtmfEvent(seq=-1, pressed_at=1, released_at=2, digit="1"), "seq must be >= 0"),
        (DtmfEvent(seq=0, pressed_at=-1, released_at=2, digit="1"), "pressed_at must be >= 0"),
        (DtmfEvent(seq=0, pressed_at=0, released_at=-1, digit="1"), "released_at must be >= 0"),
        (
            DtmfEvent(seq=0, pressed_at=1, released_at=2, digit=""),
            "digit must contain at least 1 character(s)",
        ),
        (
            DtmfEvent(seq=0, pressed_at=120, released_at=119, digit="#"),
            "released_at must be greater than or equal to pressed_at",
        ),
    ],
)
def test_validation_rules_and_messages(payload: catalog.Payload, message: str) -> None:
    with pytest.raises(PayloadValidationError) as raised:
        payload.validate()
    assert str(raised.value) == message
    with pytest.raises(PayloadValidationError):  # strict on output: to_wire validates first
        payload.to_wire()
    with pytest.raises(PayloadValidationError) as from_wire:  # and the same rule applies on input
        type(payload).from_wire(dataclasses.asdict(payload))  # type: ignore[call-overload]
    assert str(from_wire.value) == message


@pytest.mark.parametrize(
    "payload",
    [
        SessionTerminateRequest(reason="x"),
        PingRequest(t0=-5),  # non-zero is all that is asked
        PingResponse(t0=1, t1=2, t2=3, owd=-100),  # skewed clocks make owd negative
        DtmfEvent(seq=0, pressed_at=0, released_at=0, digit="*"),
        DtmfEvent(seq=3, pressed_at=5, released_at=5, digit="#"),
        AudioSpeechStartedEvent(origin="anything"),  # no enum in the catalog
        ApplicationMoveRequest(reason=""),  # optional strings have no minimum
    ],
)
def test_boundary_values_are_valid(payload: catalog.Payload) -> None:
    payload.validate()
    assert type(payload).from_wire(payload.to_wire()) == payload


def test_errors_form_a_hierarchy_of_value_errors() -> None:
    assert issubclass(PayloadDecodeError, catalog.PayloadError)
    assert issubclass(PayloadValidationError, catalog.PayloadError)
    assert issubclass(catalog.PayloadError, ValueError)


# -------------------------------------------------------------------------------- lenient decoding


def test_unknown_fields_are_ignored_at_every_level() -> None:
    params = {
        "application": {"id": "app-1", "x": 1},
        "call": {"id": "c", "session_id": "s", "from": "a", "to": "b", "sip": {"h": 1}},
        "audio_codec_offerings": [{**L16_WIRE, "ptime": 20}],
        "metadata": None,
        "future": [1, 2],
    }
    value = SessionInitializeRequest.from_wire(params)
    assert value == SessionInitializeRequest(
        application=AppInfo("app-1"),
        call=CallInfo(id="c", session_id="s", from_="a", to="b"),
        audio_codec_offerings=(L16,),
    )


@pytest.mark.parametrize("empty", [None, ABSENT, {}])
def test_absent_or_null_payload_counts_as_empty_object(empty: Any) -> None:
    assert AudioBufferClearRequest.from_wire(empty) == AudioBufferClearRequest()
    assert EmptyResponse.from_wire(empty) == EmptyResponse()
    assert OutputTranscriptDoneEvent.from_wire(empty).text is None
    assert catalog.decode_params("session.get", empty) == SessionGetRequest(keys=())
    assert catalog.decode_result("session.get", empty) == SessionGetResponse(values={})
    with pytest.raises(PayloadValidationError, match="reason must contain"):
        catalog.decode_params("session.terminate", empty)  # absent reason fails like an empty one


def test_go_nulls_become_empty_values() -> None:
    assert SessionGetRequest.from_wire({"keys": None}).keys == ()
    assert SessionSetRequest.from_wire({"data": None}).data == {}
    assert RecordingStartRequest.from_wire({"tags": None}).tags == ()
    assert RecordingStartRequest.from_wire({"tags": ["a", None]}).tags == ("a", "")
    initialize = SessionInitializeRequest.from_wire({"audio_codec_offerings": None, "call": None})
    assert initialize.audio_codec_offerings == ()
    assert initialize.call == CallInfo(id="", session_id="", from_="", to="")
    assert initialize.metadata is None
    assert AudioInfoEvent.from_wire({"read": None}).read == AudioInfoItem(0, 0.0, 0)


def test_absent_required_scalars_take_go_zero_values_then_validate() -> None:
    assert DtmfEvent.from_wire({"digit": "1"}) == DtmfEvent(seq=0, pressed_at=0, released_at=0, digit="1")
    assert AudioCodec.from_wire({}) == AudioCodec(id="", name="", sample_rate=0, bit_depth=0, channels=0)
    with pytest.raises(PayloadValidationError, match="t0 must be non-zero"):
        PingRequest.from_wire({"rtt": 3})
    with pytest.raises(PayloadValidationError, match="digit"):
        DtmfEvent.from_wire({"seq": 0, "pressed_at": 1, "released_at": 2, "digit": None})


def test_optional_null_means_absent() -> None:
    assert PingRequest.from_wire({"t0": 1, "rtt": None, "data": None}) == PingRequest(t0=1)
    assert OutputTranscriptDoneEvent.from_wire({"text": None}).text is None
    assert CallHangupEvent.from_wire({"reason": None}) == CallHangupEvent()
    assert ApplicationMoveResponse.from_wire({"next_application_id": None}) == ApplicationMoveResponse()
    assert SessionUpdatedEvent.from_wire({"audio_codec": None}).audio_codec is None
    assert SessionUpdatedEvent.from_wire({}).audio_codec is None


def test_free_form_values_are_kept_verbatim() -> None:
    values = {"z": [3, {"b": 1, "a": 2}], "a": None, "m": 1.5}
    assert SessionGetResponse.from_wire(values).values == values
    assert list(SessionGetResponse.from_wire(values).values) == ["z", "a", "m"]
    assert PingRequest.from_wire({"t0": 1, "data": [1, "x"]}).data == [1, "x"]
    assert PingRequest.from_wire({"t0": 1, "data": False}).data is False


def test_integer_fields_accept_the_whole_int64_range() -> None:
    low, high = -(2**63), 2**63 - 1
    assert PingResponse.from_wire({"t0": low, "t1": high, "t2": 1, "owd": 0}).t1 == high
    assert AudioBufferClearResponse.from_wire({"len": 0}).len == 0


@pytest.mark.parametrize("bad", [True, False, 1.0, 1.5, "7", [7], {"v": 7}, 2**63, -(2**63) - 1])
def test_integer_fields_reject_other_types(bad: Any) -> None:
    with pytest.raises(PayloadDecodeError) as raised:
        DtmfEvent.from_wire({"seq": bad, "pressed_at": 1, "released_at": 2, "digit": "1"})
    assert str(raised.value).startswith("decode DtmfEvent: seq: ")


def test_float_field_accepts_integers_and_rejects_the_rest() -> None:
    assert AudioInfoItem.from_wire({"bytes_per_second": 12800}).bytes_per_second == 12800.0
    assert type(AudioInfoItem.from_wire({"bytes_per_second": 7}).bytes_per_second) is float
    for bad in (True, "1", math.inf, math.nan, 2**64, [1.0]):
        with pytest.raises(PayloadDecodeError, match="bytes_per_second"):
            AudioInfoItem.from_wire({"bytes_per_second": bad})


def test_decode_error_messages_name_the_payload_and_path() -> None:
    with pytest.raises(PayloadDecodeError) as raised:
        SessionTerminateRequest.from_wire({"reason": 5})
    assert str(raised.value) == "decode SessionTerminateRequest: reason: expected string, got number"
    with pytest.raises(PayloadDecodeError) as raised:
        catalog.decode_params("session.terminate", {"reason": ["x"]})
    assert str(raised.value) == "decode session.terminate request: reason: expected string, got array"
    with pytest.raises(PayloadDecodeError) as raised:
        catalog.decode_params("session.initialize", {"call": {"from": True}})
    assert str(raised.value) == "decode session.initialize request: call.from: expected string, got boolean"
    offers = [L16_WIRE, {**L16_WIRE, "sample_rate": "8000"}]
    with pytest.raises(PayloadDecodeError) as raised:
        catalog.decode_params("session.initialize", {"audio_codec_offerings": offers})
    assert "audio_codec_offerings[1].sample_rate: expected integer, got string" in str(raised.value)
    with pytest.raises(PayloadDecodeError) as raised:
        catalog.decode_result("ping", [])
    assert str(raised.value) == "decode ping response: payload: expected object, got array"
    with pytest.raises(PayloadDecodeError) as raised:
        catalog.decode_event_data("dtmf", {"digit": 5})
    assert str(raised.value) == "decode dtmf event: digit: expected string, got number"
    with pytest.raises(PayloadDecodeError, match=r"tags\[1\]: expected string, got number"):
        RecordingStartRequest.from_wire({"tags": ["a", 2]})
    with pytest.raises(PayloadDecodeError, match="metadata: expected object, got array"):
        SessionInitializeRequest.from_wire({"metadata": []})


def test_unknown_names_are_decode_errors_not_key_errors() -> None:
    with pytest.raises(PayloadDecodeError, match=r"^decode demo\.echo request: unknown method$"):
        catalog.decode_params("demo.echo", {})
    with pytest.raises(PayloadDecodeError, match=r"^decode demo\.echo response: unknown method$"):
        catalog.decode_result("demo.echo", {})
    with pytest.raises(PayloadDecodeError, match=r"^decode demo\.observed event: unknown event$"):
        catalog.decode_event_data("demo.observed", {})


def test_decoders_return_the_registered_types() -> None:
    assert catalog.decode_params("call.hangup", {"reason": "caller"}) == CallHangupRequest("caller")
    assert catalog.decode_result("call.hangup", {}) == EmptyResponse()
    assert catalog.decode_result("audio.buffer.clear", {"len": 320}) == AudioBufferClearResponse(len=320)
    assert catalog.decode_event_data("call.hangup", {}) == CallHangupEvent(reason=None)


# -------------------------------------------------------------------------------- strict encoding


def test_codes_built_in_code_match_the_golden_spellings() -> None:
    initialize = SessionInitializeRequest(
        application=AppInfo("app-1"),
        call=CallInfo(id="call-1", session_id="session-1", from_="+12025550100", to="+12025550101"),
        audio_codec_offerings=(L16,),
    )
    assert encoded(initialize) == (
        '{"application":{"id":"app-1"},"call":{"id":"call-1","session_id":"session-1",'
        '"from":"+12025550100","to":"+12025550101"},"audio_codec_offerings":[{"id":"L16/8000/1",'
        '"name":"L16","sample_rate":8000,"bit_depth":16,"channels":1}],"metadata":null}'
    )
    assert encoded(SessionInitializeResponse(audio_codec=None)) == '{"audio_codec":null}'
    dtmf = DtmfEvent(seq=7, pressed_at=1700000000000, released_at=1700000000120, digit="5")
    assert encoded(dtmf) == '{"seq":7,"pressed_at":1700000000000,"released_at":1700000000120,"digit":"5"}'
    info = AudioInfoEvent(
        read=AudioInfoItem(bytes=1280, bytes_per_second=12800.0, bytes_total=6400),
        write=AudioInfoItem(bytes=32, bytes_per_second=32 / 0.3, bytes_total=96),
    )
    assert encoded(info) == (
        '{"read":{"bytes":1280,"bytes_per_second":12800,"bytes_total":6400},'
        '"write":{"bytes":32,"bytes_per_second":106.66666666666667,"bytes_total":96}}'
    )
    ping = PingResponse(t0=1700000000000, t1=1700000000010, t2=1700000000012, owd=5, data={"probe": "x"})
    assert (
        encoded(ping)
        == '{"t0":1700000000000,"t1":1700000000010,"t2":1700000000012,"owd":5,"data":{"probe":"x"}}'
    )


def test_required_nullable_keys_are_always_written() -> None:
    assert SessionInitializeResponse(audio_codec=L16).to_wire() == {"audio_codec": L16_WIRE}
    assert SessionUpdatedEvent(audio_codec=None).to_wire() == {"audio_codec": None}
    initialize = SessionInitializeRequest(AppInfo("a"), CallInfo("c", "s", "f", "t"), ())
    assert initialize.to_wire()["metadata"] is None
    assert initialize.to_wire()["audio_codec_offerings"] == []


def test_optional_keys_are_omitted_when_absent() -> None:
    assert PingRequest(t0=1).to_wire() == {"t0": 1}
    assert PingRequest(t0=1, rtt=0).to_wire() == {"t0": 1, "rtt": 0}
    assert PingResponse(t0=1, t1=2, t2=3, owd=2).to_wire() == {"t0": 1, "t1": 2, "t2": 3, "owd": 2}
    assert ApplicationMoveRequest().to_wire() == {}
    assert encoded(ApplicationMoveRequest(application_id="app-2")) == '{"application_id":"app-2"}'
    assert ApplicationMoveResponse().to_wire() == {}
    assert CallHangupEvent().to_wire() == {}
    assert RecordingStartRequest().to_wire() == {}


@pytest.mark.parametrize("data", [False, 0, "", [], {}])
def test_falsy_ping_data_is_still_echoed(data: Any) -> None:
    assert PingRequest(t0=1, data=data).to_wire() == {"t0": 1, "data": data}
    assert PingRequest.from_wire({"t0": 1, "data": data}).to_wire() == {"t0": 1, "data": data}


@pytest.mark.parametrize(("wire_text", "text"), [("{}", None), ('{"text":""}', ""), ('{"text":"Hi"}', "Hi")])
def test_output_transcript_done_keeps_three_states(wire_text: str, text: str | None) -> None:
    value = OutputTranscriptDoneEvent.from_wire(wire.loads(wire_text))
    assert value.text == text
    assert encoded(value) == wire_text


def test_lists_are_always_sent_as_arrays() -> None:
    assert encoded(SessionGetRequest()) == '{"keys":[]}'
    assert encoded(SessionGetRequest(keys=("b", "a"))) == '{"keys":["b","a"]}'  # order kept
    assert encoded(RecordingStartRequest(tags=("x",))) == '{"tags":["x"]}'


def test_free_form_maps_are_sorted_deeply_on_output() -> None:
    values = {"customer": "Ada", "attempt": 2, "nested": {"z": 1, "a": [{"d": 0, "c": 1}]}}
    expected = '{"attempt":2,"customer":"Ada","nested":{"a":[{"c":1,"d":0}],"z":1}}'
    assert encoded(SessionGetResponse(values=values)) == expected
    assert encoded(SessionSetRequest(data=values)) == f'{{"data":{expected}}}'
    assert encoded(PingRequest(t0=1, data=values)) == f'{{"t0":1,"data":{expected}}}'
    initialize = SessionInitializeRequest(AppInfo("a"), CallInfo("c", "s", "f", "t"), (), metadata=values)
    assert encoded(initialize).endswith(f'"metadata":{expected}}}')
    assert list(values) == ["customer", "attempt", "nested"]  # the caller's dict is not reordered


def test_to_wire_returns_fresh_objects() -> None:
    data = {"k": [1]}
    sent = SessionSetRequest(data=data).to_wire()
    sent["data"]["k"].append(2)
    assert data == {"k": [1]}


def test_values_that_are_not_json_fail_at_encoding_time() -> None:
    with pytest.raises(wire.WireError):
        wire.dumps(PingRequest(t0=2**60).to_wire())
    with pytest.raises(wire.WireError):
        SessionSetRequest(data={1: "x"}).to_wire()  # type: ignore[dict-item]


# ----------------------------------------------------------------------------------- the types


_NEEDS_VALID_INPUT: dict[type[catalog.Payload], dict[str, Any]] = {
    SessionTerminateRequest: {"reason": "r"},
    CallHangupRequest: {"reason": "r"},
    RecordingStopRequest: {"id": "r"},
    RecordingStartResponse: {"id": "r"},
    PingRequest: {"t0": 1},
    PingResponse: {"t0": 1, "t1": 1, "t2": 1, "owd": 0},
    DtmfEvent: {"digit": "1"},
}


@pytest.mark.parametrize("cls", PAYLOAD_TYPES, ids=lambda cls: cls.__name__)
def test_every_type_is_a_frozen_slotted_dataclass(cls: type[catalog.Payload]) -> None:
    assert dataclasses.is_dataclass(cls)
    value = cls.from_wire(_NEEDS_VALID_INPUT.get(cls, {}))
    assert not hasattr(value, "__dict__")
    fields = dataclasses.fields(value)  # type: ignore[arg-type]
    if fields:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, fields[0].name, None)


def test_registry_contents() -> None:
    assert len(catalog.OPERATIONS) == 10
    assert len(catalog.EVENTS) == 9
    assert {m for m, s in catalog.OPERATIONS.items() if s.terminal} == {
        "session.terminate",
        "call.hangup",
        "application.move",
    }
    assert {m for m, s in catalog.OPERATIONS.items() if s.handled_by != "voice"} == {
        "ping",
        "session.initialize",
        "session.terminate",
    }
    assert catalog.OPERATIONS["session.get"].response is SessionGetResponse
    assert catalog.EVENTS["dtmf"].data is DtmfEvent and catalog.EVENTS["dtmf"].emitted_by == "voice"
    assert catalog.EVENTS["input.transcript"].data is InputTranscriptEvent
    assert catalog.EVENTS["output.transcript.delta"].data is OutputTranscriptDeltaEvent
    assert catalog.EVENTS["agent.tool.call"].data is AgentToolCallEvent
    with pytest.raises(TypeError):
        catalog.OPERATIONS["x"] = catalog.OPERATIONS["ping"]  # type: ignore[index]
    assert catalog.REVERSE_TERMINATE_MESSAGE == (
        "session.terminate is not supported. please use application.move or call.hangup instead"
    )


# ----------------------------------------------------------------------------------- properties

json_scalar = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats()
    | st.text(max_size=8)
)
json_value = st.recursive(
    json_scalar,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
    max_leaves=15,
)
WIRE_KEYS = sorted(
    {
        "application", "call", "audio_codec_offerings", "metadata", "audio_codec", "id", "session_id",
        "from", "to", "name", "sample_rate", "bit_depth", "channels", "reason", "t0", "t1", "t2", "owd",
        "rtt", "data", "application_id", "next_application_id", "len", "tags", "keys", "seq",
        "pressed_at", "released_at", "digit", "read", "write", "bytes", "bytes_per_second",
        "bytes_total", "origin", "delta", "text",
    }
)  # fmt: skip
shaped_value = st.recursive(
    st.one_of(json_value, st.sampled_from(["", "x", 0, 1, -1, 2**53, True, None])),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from(WIRE_KEYS), c, max_size=6),
    max_leaves=25,
)
payload_like = st.dictionaries(st.sampled_from(WIRE_KEYS), shaped_value, max_size=10) | json_value


@settings(max_examples=300)
@given(st.sampled_from(PAYLOAD_TYPES), payload_like)
def test_from_wire_raises_only_payload_errors(cls: type[catalog.Payload], obj: Any) -> None:
    try:
        value = cls.from_wire(obj)
    except catalog.PayloadError:
        return
    # Whatever was accepted can be sent back and means the same thing.
    assert cls.from_wire(value.to_wire()) == value


@settings(max_examples=300)
@given(st.sampled_from(sorted(catalog.OPERATIONS)), payload_like, st.booleans())
def test_registry_decoders_raise_only_payload_errors(method: str, obj: Any, params: bool) -> None:
    decode = catalog.decode_params if params else catalog.decode_result
    with contextlib.suppress(catalog.PayloadError):
        decode(method, obj)


@settings(max_examples=200)
@given(st.text(max_size=20), payload_like)
def test_event_decoder_raises_only_payload_errors(event: str, obj: Any) -> None:
    for name in (event, *catalog.EVENTS):
        with contextlib.suppress(catalog.PayloadError):
            catalog.decode_event_data(name, obj)


# ---- wire forms derived from the dataclass fields


@dataclasses.dataclass(frozen=True, slots=True)
class _Unsendable(catalog.Payload):
    tags: set[str]  # no wire form: JSON has no sets


@dataclasses.dataclass(frozen=True, slots=True)
class _Shaped(catalog.Payload):
    from_: str = dataclasses.field(metadata=catalog._wire(key="from"))
    note: str | None = None
    extra: dict[str, Any] | None = dataclasses.field(default=None, metadata=catalog._wire(nullable=True))
    labels: tuple[str, ...] = dataclasses.field(default=(), metadata=catalog._wire(omit_empty=True))


def test_a_field_type_without_a_wire_form_is_refused_by_name() -> None:
    with pytest.raises(TypeError, match="no wire form for a field of type set"):
        _Unsendable.from_wire({"tags": []})


def test_field_metadata_renames_keeps_null_and_omits_empty() -> None:
    assert _Shaped("x").to_wire() == {"from": "x", "extra": None}  # note omitted, extra kept as null
    full = _Shaped("x", "n", {"b": 1, "a": 2}, ("l",))
    assert list(full.to_wire().items()) == [
        ("from", "x"),
        ("note", "n"),
        ("extra", {"a": 2, "b": 1}),
        ("labels", ["l"]),
    ]
    assert list(full.to_wire()["extra"]) == ["a", "b"]  # free-form maps are sorted as Go does
    assert _Shaped.from_wire(full.to_wire()) == full
    with pytest.raises(
        catalog.PayloadDecodeError, match=r"decode _Shaped: from: expected string, got number"
    ):
        _Shaped.from_wire({"from": 1})
