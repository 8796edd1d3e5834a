"""The published AMQP contract (schemas/): JSON Schemas, the AsyncAPI document and bridge.schemas.

Valid bodies are built the way docs/amqp-contract.md says the bridge builds them and go through a msgpack
round trip first, so `audio` stays `bytes` exactly as a consumer decodes it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import yaml
from jsonschema import Draft7Validator, Draft202012Validator, ValidationError
from referencing import Registry, Resource

from bridge.broker.lost_calls import LostCall
from bridge.broker.reaper import bridge_lost_body
from bridge.protocol.catalog import OPERATIONS
from bridge.schemas import (
    SCHEMA_DIR,
    BodyKind,
    jsonable,
    result_schema_for,
    schema_name_for,
    validate_body,
    validate_reply,
)

REPO = Path(__file__).resolve().parents[2]
ID_BASE = "https://rtvbp-bridge.dev/schemas/v1/"
EVENT_TYPES = [
    "session.started",
    "session.updated",
    "dtmf",
    "call.hangup",
    "audio.info",
    "playout.mark",
    "audio.gap",
    "command.rejected",
    "session.ended",
]
COMMAND_TYPES = ["audio", "mark", "clear", "request", "event"]
EXPECTED_FILES = {
    "defs",
    "audio-chunk",
    "reply",
    "results",
    *(f"event.{name}" for name in EVENT_TYPES),
    *(f"command.{name}" for name in COMMAND_TYPES),
}
SCHEMA_FILES = sorted(SCHEMA_DIR.glob("*.schema.json"))


def _stem(path: Path) -> str:
    return path.name.removesuffix(".schema.json")


def _load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def _own_registry() -> Registry[Any]:
    """Built here, independently of bridge.schemas, so schema content is tested on its own."""
    return Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema)) for schema in map(_load, SCHEMA_FILES)
    )


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(_load(SCHEMA_DIR / f"{name}.schema.json"), registry=_own_registry())


# ---------------------------------------------------------------- bodies, built as the bridge builds them

SESSION_ID = "call-7f3a"
ODD_SESSION_ID = "sip:7f3a@voice.example/1"  # not key-safe: routed as h_<sha256 prefix>
TS = 1_700_000_000_123
OFFERED = [
    {"id": "L16/16000/1", "name": "L16", "sample_rate": 16000, "bit_depth": 16, "channels": 1},
    {"id": "L16/8000/1", "name": "L16", "sample_rate": 8000, "bit_depth": 16, "channels": 1},
]
NEGOTIATED = {**OFFERED[1], "endianness": "little"}
COUNTERS = dict.fromkeys(
    [
        "frames_in",
        "bytes_in",
        "chunks_in",
        "chunks_out",
        "frames_out",
        "bytes_out",
        "dropped_in_bytes",
        "dropped_in_chunks",
        "dropped_out_bytes",
        "malformed_frames",
        "early_binary_frames",
        "events_published",
        "commands_received",
        "commands_rejected",
    ],
    0,
) | {"frames_in": 250, "bytes_in": 80_000, "events_published": 5}


def on_the_wire(body: dict[str, Any]) -> Any:
    return msgpack.unpackb(msgpack.packb(body, use_bin_type=True), raw=False)


def session_key(session_id: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_-]{1,128}", session_id):
        return session_id
    return "h_" + hashlib.sha256(session_id.encode()).hexdigest()[:40]


def upstream(event_type: str, data: dict[str, Any], *, seq: int = 1, session_id: str = SESSION_ID) -> Any:
    return on_the_wire({"type": event_type, "session_id": session_id, "seq": seq, "ts": TS, "data": data})


def session_started(session_id: str = SESSION_ID, metadata: dict[str, Any] | None = None) -> Any:
    key = session_key(session_id)
    return upstream(
        "session.started",
        {
            "application": {"id": "app-1"},
            "call": {"id": "c-1", "session_id": session_id, "from": "+4930123", "to": "+4940456"},
            "audio_codec_offerings": OFFERED,
            "audio_codec": NEGOTIATED,
            "metadata": metadata,
            "instance": "bridge-0",
            "commands": {"exchange": "rtvbp.commands", "routing_key": key},
            "audio": {"exchange": "rtvbp.audio", "routing_key": f"{key}.in", "chunk_ms": 100},
        },
        seq=0,
        session_id=session_id,
    )


def audio_chunk(direction: str = "in", seq: int = 3) -> Any:
    samples = 800  # 100 ms at 8 kHz mono
    return on_the_wire(
        {
            "type": "audio",
            "session_id": SESSION_ID,
            "direction": direction,
            "seq": seq,
            "ts": seq * 100,
            "codec": NEGOTIATED,
            "audio": bytes(range(256)) * (samples * 2 // 256) + bytes(samples * 2 % 256),
        }
    )


def command(command_type: str, **fields: Any) -> Any:
    return on_the_wire({"type": command_type, **fields})


def reply(**fields: Any) -> Any:
    return on_the_wire({"type": "reply", "session_id": SESSION_ID, **fields})


VALID: dict[str, tuple[BodyKind, Any]] = {
    "session.started": ("event", session_started(metadata={"campaign": "x", "n": 1})),
    "session.started odd id, nil metadata": ("event", session_started(ODD_SESSION_ID)),
    "session.updated": ("event", upstream("session.updated", {"audio_codec": OFFERED[1]})),
    "session.updated nil codec": ("event", upstream("session.updated", {"audio_codec": None})),
    "dtmf": (
        "event",
        upstream("dtmf", {"seq": 0, "pressed_at": TS - 120, "released_at": TS - 20, "digit": "#"}),
    ),
    "call.hangup": ("event", upstream("call.hangup", {"reason": "caller"})),
    "call.hangup empty": ("event", upstream("call.hangup", {})),
    "audio.info": (
        "event",
        upstream(
            "audio.info",
            {
                "read": {"bytes": 80_000, "bytes_per_second": 16_000.0, "bytes_total": 160_000},
                "write": {"bytes": 0, "bytes_per_second": 0, "bytes_total": 0},
            },
        ),
    ),
    "playout.mark": ("event", upstream("playout.mark", {"name": "greeting-done", "position_ms": 2340})),
    "audio.gap": (
        "event",
        upstream(
            "audio.gap",
            {
                "direction": "in",
                "reason": "broker_unavailable",
                "dropped_chunks": 3,
                "dropped_bytes": 4800,
                "dropped_ms": 300,
                "first_seq": 12,
                "last_seq": 14,
            },
        ),
    ),
    "audio.gap out, no seqs": (
        "event",
        upstream(
            "audio.gap",
            {
                "direction": "out",
                "reason": "buffer_overflow",
                "dropped_chunks": 0,
                "dropped_bytes": 320,
                "dropped_ms": 20,
            },
        ),
    ),
    "command.rejected": (
        "event",
        upstream("command.rejected", {"command_type": "request", "code": 400, "message": "bad params"}),
    ),
    "command.rejected with correlation": (
        "event",
        upstream(
            "command.rejected",
            {"command_type": "nope", "code": 501, "message": "unknown command", "correlation_id": "c-9"},
        ),
    ),
    "session.ended": (
        "event",
        upstream("session.ended", {"reason": "hangup", "duration_ms": 5020, "counters": COUNTERS}, seq=7),
    ),
    "session.ended with detail": (
        "event",
        upstream(
            "session.ended",
            {"reason": "error", "detail": "socket reset", "duration_ms": 0, "counters": COUNTERS},
        ),
    ),
    # Built by the reaper's own function: what a surviving replica really publishes for a lost call.
    "session.ended bridge_lost": (
        "event",
        jsonable(bridge_lost_body(LostCall("call/1", "h_1", "pod-a", None))),
    ),
    "audio in": ("audio", audio_chunk("in")),
    "audio out": ("audio", audio_chunk("out", seq=0)),
    "command audio": ("command", command("audio", audio=b"\x00\x01" * 160)),
    "command audio with codec": ("command", command("audio", audio=b"\x00\x01" * 160, codec=NEGOTIATED)),
    "command mark": ("command", command("mark", name="greeting-done")),
    "command clear": ("command", command("clear")),
    "request application.move": (
        "command",
        command("request", method="application.move", params={"reason": "handoff", "application_id": "a2"}),
    ),
    "request application.move no params": ("command", command("request", method="application.move")),
    "request audio.buffer.clear": ("command", command("request", method="audio.buffer.clear", params={})),
    "request call.hangup": ("command", command("request", method="call.hangup", params={"reason": "done"})),
    "request ping": ("command", command("request", method="ping", params={"t0": TS, "data": {"p": 1}})),
    "request recording.start": (
        "command",
        command("request", method="recording.start", params={"tags": ["support"]}),
    ),
    "request recording.stop": (
        "command",
        command("request", method="recording.stop", params={"id": "rec-1"}),
    ),
    "request session.get all": ("command", command("request", method="session.get", params={"keys": []})),
    "request session.set": (
        "command",
        command("request", method="session.set", params={"data": {"customer": "Ada", "attempt": 2}}),
    ),
    "event audio.speech.started": (
        "command",
        command("event", event="audio.speech.started", data={"origin": "sender"}),
    ),
    "event input.transcript": (
        "command",
        command("event", event="input.transcript", data={"delta": "hello"}),
    ),
    "event output.transcript.delta": (
        "command",
        command("event", event="output.transcript.delta", data={"delta": "Hi "}),
    ),
    "event output.transcript.done no data": ("command", command("event", event="output.transcript.done")),
    "event agent.tool.call": ("command", command("event", event="agent.tool.call", data={"name": "lookup"})),
    "reply ok": ("reply", reply(ok=True, result={"queued_bytes": 3200, "backlog_ms": 200, "queued_ms": 200})),
    "reply ok empty": ("reply", reply(ok=True, result={})),
    "reply error": ("reply", reply(ok=False, error={"code": 504, "message": "voice did not answer"})),
}


def _set(path: str, value: Any) -> Callable[[Any], None]:
    *parents, last = path.split(".")

    def apply(body: Any) -> None:
        for key in parents:
            body = body[key]
        body[last] = value

    return apply


def _drop(path: str) -> Callable[[Any], None]:
    *parents, last = path.split(".")

    def apply(body: Any) -> None:
        for key in parents:
            body = body[key]
        del body[last]

    return apply


# (valid base, mutation): each base is valid (test above), so the mutation alone must make it fail.
INVALID: dict[str, tuple[str, Callable[[Any], None]]] = {
    "event without seq": ("dtmf", _drop("seq")),
    "negative seq": ("dtmf", _set("seq", -1)),
    "seq as text": ("dtmf", _set("seq", "1")),
    "seq as bool": ("dtmf", _set("seq", True)),
    "ts as float": ("dtmf", _set("ts", 1.5)),
    "event without session_id": ("dtmf", _drop("session_id")),
    "event without data": ("call.hangup", _drop("data")),
    "data as list": ("call.hangup", _set("data", [])),
    "dtmf without digit": ("dtmf", _drop("data.digit")),
    "dtmf empty digit": ("dtmf", _set("data.digit", "")),
    "dtmf negative pressed_at": ("dtmf", _set("data.pressed_at", -5)),
    "session.started seq 1": ("session.started", _set("seq", 1)),
    "session.started codec without endianness": ("session.started", _drop("data.audio_codec.endianness")),
    "session.started without instance": ("session.started", _drop("data.instance")),
    "session.started metadata missing": ("session.started", _drop("data.metadata")),
    "session.started no offerings": ("session.started", _set("data.audio_codec_offerings", [])),
    "session.started call without from": ("session.started", _drop("data.call.from")),
    "session.started unsafe routing key": ("session.started", _set("data.commands.routing_key", "a.b")),
    "session.started chunk_ms 30": ("session.started", _set("data.audio.chunk_ms", 30)),
    "session.updated without audio_codec": ("session.updated", _drop("data.audio_codec")),
    "audio.info without write": ("audio.info", _drop("data.write")),
    "playout.mark negative position": ("playout.mark", _set("data.position_ms", -1)),
    "audio.gap unknown reason": ("audio.gap", _set("data.reason", "bored")),
    "audio.gap bad direction": ("audio.gap", _set("data.direction", "both")),
    "command.rejected without code": ("command.rejected", _drop("data.code")),
    "command.rejected code 0": ("command.rejected", _set("data.code", 0)),
    "session.ended unknown reason": ("session.ended", _set("data.reason", "tired")),
    "session.ended counter missing": ("session.ended", _drop("data.counters.bytes_in")),
    "session.ended negative counter": ("session.ended", _set("data.counters.frames_out", -1)),
    "session.ended hangup without seq": ("session.ended", _drop("seq")),
    "session.ended hangup without counters": ("session.ended", _drop("data.counters")),
    "session.ended bridge_lost without instance": ("session.ended bridge_lost", _drop("data.instance")),
    "session.ended bridge_lost with invented counters": (
        "session.ended bridge_lost",
        _set("data.counters", {}),
    ),
    "audio codec without endianness": ("audio in", _drop("codec.endianness")),
    "audio codec big endian": ("audio in", _set("codec.endianness", "big")),
    "audio codec 8 bit": ("audio in", _set("codec.bit_depth", 8)),
    "audio as text": ("audio in", _set("audio", "not base64 at all!")),
    "audio bad direction": ("audio in", _set("direction", "sideways")),
    "audio without seq": ("audio in", _drop("seq")),
    "audio wrong type": ("audio in", _set("type", "chunk")),
    "command audio without audio": ("command audio", _drop("audio")),
    "command audio codec incomplete": ("command audio with codec", _drop("codec.sample_rate")),
    "command mark without name": ("command mark", _drop("name")),
    "request unknown method": ("request call.hangup", _set("method", "session.terminate")),
    "request without method": ("request call.hangup", _drop("method")),
    "call.hangup empty reason": ("request call.hangup", _set("params.reason", "")),
    "call.hangup without params": ("request call.hangup", _drop("params")),
    "ping t0 zero": ("request ping", _set("params.t0", 0)),
    "recording.stop without id": ("request recording.stop", _set("params", {})),
    "session.get keys not a list": ("request session.get all", _set("params.keys", "all")),
    "session.set without data": ("request session.set", _set("params", {})),
    "params not an object": ("request audio.buffer.clear", _set("params", [])),
    "event unknown name": ("event input.transcript", _set("event", "output.audio")),
    "input.transcript without delta": ("event input.transcript", _set("data", {})),
    "agent.tool.call without data": ("event agent.tool.call", _drop("data")),
    "speech.started origin not text": ("event audio.speech.started", _set("data.origin", 1)),
    "reply ok with error": ("reply ok", _set("error", {"code": 500, "message": "x"})),
    "reply ok without result": ("reply ok", _drop("result")),
    "reply not ok without error": ("reply error", _drop("error")),
    "reply not ok with result": ("reply error", _set("result", {})),
    "reply error code 0": ("reply error", _set("error.code", 0)),
    "reply error without message": ("reply error", _drop("error.message")),
    "reply ok not bool": ("reply ok", _set("ok", "yes")),
}


# ---------------------------------------------------------------- schema files


def test_schema_files_are_exactly_the_contract_bodies() -> None:
    assert {_stem(path) for path in SCHEMA_FILES} == EXPECTED_FILES


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=_stem)
def test_every_schema_is_valid_draft_2020_12_with_its_own_id(path: Path) -> None:
    schema = _load(path)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"{ID_BASE}{path.name}"


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=_stem)
def test_every_ref_resolves_offline(path: Path) -> None:
    schema = _load(path)
    resolver = _own_registry().resolver(base_uri=schema["$id"])
    for ref in _refs(schema):
        assert resolver.lookup(ref).contents is not None, ref


@pytest.mark.parametrize("name", EVENT_TYPES)
def test_event_schemas_pin_their_type(name: str) -> None:
    assert _load(SCHEMA_DIR / f"event.{name}.schema.json")["properties"]["type"] == {"const": name}


def test_wrong_type_const_fails_against_a_specific_schema() -> None:
    _, body = VALID["dtmf"]
    validator("event.dtmf").validate(jsonable(body))
    with pytest.raises(ValidationError):
        validator("event.dtmf").validate(jsonable({**body, "type": "call.hangup"}))


def test_request_and_event_enums_match_their_per_name_rules() -> None:
    for name, field in (("command.request", "method"), ("command.event", "event")):
        schema = _load(SCHEMA_DIR / f"{name}.schema.json")
        ruled = {rule["if"]["properties"][field]["const"] for rule in schema["allOf"]}
        assert ruled == set(schema["properties"][field]["enum"]) == set(schema["$defs"])
    assert len(_load(SCHEMA_DIR / "command.request.schema.json")["$defs"]) == 8
    assert len(_load(SCHEMA_DIR / "command.event.schema.json")["$defs"]) == 5


def _nodes(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _nodes(value)


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=_stem)
def test_no_keyword_beside_a_ref_where_generators_drop_it(path: Path) -> None:
    beside = [sorted(node) for node in _nodes(_load(path)) if "$ref" in node and len(node) > 1]
    assert beside == []


def _pascal(dotted: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in dotted.split("."))


@pytest.mark.parametrize("name", EVENT_TYPES)
def test_every_event_and_its_data_are_named_schemas(name: str) -> None:
    schema = _load(SCHEMA_DIR / f"event.{name}.schema.json")
    assert schema["title"] == f"{_pascal(name)}Event"
    data_ref = schema["properties"]["data"]["$ref"]
    assert data_ref == f"#/$defs/{_pascal(name)}Data"
    assert _resolve_local(schema, data_ref)["title"] == f"{_pascal(name)}Data"


def _resolve_local(schema: dict[str, Any], ref: str) -> Any:
    return _pointer(schema, ref.removeprefix("#"))


def test_commands_replies_chunks_counters_and_gap_fields_have_readable_titles() -> None:
    titles = {_stem(path): _load(path).get("title") for path in SCHEMA_FILES}
    assert titles["audio-chunk"] == "AudioChunk" and titles["reply"] == "Reply"
    for name in COMMAND_TYPES:
        assert titles[f"command.{name}"] == f"{name.capitalize()}Command"
    ended = _load(SCHEMA_DIR / "event.session.ended.schema.json")
    assert ended["$defs"]["SessionEndedData"]["properties"]["counters"] == {"$ref": "#/$defs/SessionCounters"}
    gap = _load(SCHEMA_DIR / "event.audio.gap.schema.json")["$defs"]["AudioGapData"]
    for schema in (ended["$defs"]["SessionCounters"], gap):
        undefined = [field for field, spec in schema["properties"].items() if not spec.get("description")]
        assert undefined == [], f"{schema['title']}: fields without a definition: {undefined}"
    for defs_name in ("command.request", "command.event"):
        for key, spec in _load(SCHEMA_DIR / f"{defs_name}.schema.json")["$defs"].items():
            assert spec["title"] == _pascal(key) + ("Params" if defs_name == "command.request" else "Data")


RESULTS = _load(SCHEMA_DIR / "results.schema.json")["$defs"]
APPLICATION_REQUESTS = sorted(m for m, spec in OPERATIONS.items() if spec.handled_by in ("voice", "both"))


def test_a_named_result_schema_for_every_command_type_and_request_method() -> None:
    expected = {f"{t.capitalize()}Result" for t in COMMAND_TYPES if t != "request"} | {
        f"{_pascal(method)}Result" for method in APPLICATION_REQUESTS
    }
    assert set(RESULTS) == expected
    assert all(spec["title"] == name and spec.get("description") for name, spec in RESULTS.items())
    for name, spec in RESULTS.items():
        fields = spec.get("properties", {})
        undefined = [field for field, prop in fields.items() if not prop.get("description")]
        assert undefined == [], f"{name}: result fields without a definition: {undefined}"
    request_methods = _load(SCHEMA_DIR / "command.request.schema.json")["properties"]["method"]["enum"]
    assert sorted(request_methods) == APPLICATION_REQUESTS


def test_result_schema_for_names_the_command_or_method() -> None:
    assert result_schema_for({"type": "audio"}) == "AudioResult"
    assert result_schema_for({"type": "request", "method": "session.get"}) == "SessionGetResult"
    assert result_schema_for({"type": "request", "method": "audio.buffer.clear"}) == "AudioBufferClearResult"
    for bad in ({"type": "request", "method": "session.terminate"}, {"type": "teleport"}, {}):
        with pytest.raises(ValueError):
            result_schema_for(bad)


RESULT_CASES: list[tuple[dict[str, Any], dict[str, Any], bool]] = [
    ({"type": "audio"}, {"queued_bytes": 320, "backlog_ms": 20, "queued_ms": 20}, True),
    ({"type": "audio"}, {"queued_bytes": 320, "queued_ms": 20}, False),  # backlog_ms missing
    ({"type": "audio"}, {"queued_bytes": "320", "backlog_ms": 20, "queued_ms": 20}, False),
    ({"type": "mark"}, {"name": "m"}, True),
    ({"type": "clear"}, {"bridge_bytes": 0, "voice_bytes": 0, "marks_dropped": ["a"]}, True),
    ({"type": "clear"}, {"bridge_bytes": 0, "voice_bytes": 0, "marks_dropped": "a"}, False),
    ({"type": "event", "event": "input.transcript"}, {}, True),
    ({"type": "request", "method": "ping"}, {"t0": 1, "t1": 2, "t2": 3, "owd": 2}, True),
    ({"type": "request", "method": "ping"}, {"t0": 1, "t1": 2, "t2": 3}, False),
    ({"type": "request", "method": "recording.start"}, {"id": "r-1"}, True),
    ({"type": "request", "method": "recording.start"}, {"id": ""}, False),
    ({"type": "request", "method": "session.get"}, {"customer": "Ada", "blob": b"\x00"}, True),
    ({"type": "request", "method": "audio.buffer.clear"}, {"len": -1}, False),
    ({"type": "request", "method": "application.move"}, {}, True),
]


@pytest.mark.parametrize(("command_body", "result", "valid"), RESULT_CASES)
def test_reply_results_are_checked_per_command(
    command_body: dict[str, Any], result: dict[str, Any], valid: bool
) -> None:
    body = reply(ok=True, result=result)
    if valid:
        validate_reply(body, command_body)
    else:
        with pytest.raises(ValidationError):
            validate_reply(body, command_body)


def test_error_replies_need_no_result_schema() -> None:
    validate_reply(reply(ok=False, error={"code": 400, "message": "bad"}), {"type": "teleport"})


# ---------------------------------------------------------------- bodies


@pytest.mark.parametrize(("kind", "body"), VALID.values(), ids=VALID.keys())
def test_valid_bodies_pass(kind: BodyKind, body: Any) -> None:
    validate_body(body, kind=kind)


@pytest.mark.parametrize(("kind", "body"), VALID.values(), ids=VALID.keys())
def test_unknown_fields_are_allowed_so_the_contract_can_grow(kind: BodyKind, body: Any) -> None:
    grown = copy.deepcopy(body) | {"added_in_v1_7": {"anything": [1, b"\x00"]}}
    if isinstance(grown.get("data"), dict):
        grown["data"]["also_new"] = True
    validate_body(grown, kind=kind)


@pytest.mark.parametrize(("base", "mutate"), INVALID.values(), ids=INVALID.keys())
def test_invalid_bodies_fail(base: str, mutate: Callable[[Any], None]) -> None:
    kind, body = VALID[base]
    broken = copy.deepcopy(body)
    mutate(broken)
    assert repr(broken) != repr(body)
    with pytest.raises(ValidationError):
        validate_body(broken, kind=kind)


def test_audio_stays_bytes_through_msgpack() -> None:
    assert isinstance(VALID["audio in"][1]["audio"], bytes)
    assert isinstance(VALID["command audio"][1]["audio"], bytes)


def test_unknown_body_types_fail_validation() -> None:
    with pytest.raises(ValidationError, match="no schema"):
        validate_body(upstream("session.paused", {}), kind="event")
    with pytest.raises(ValidationError, match="no schema"):
        validate_body(command("dance"), kind="command")
    with pytest.raises(ValidationError):
        validate_body({"session_id": SESSION_ID}, kind="event")


# ---------------------------------------------------------------- bridge.schemas helpers


def test_schema_name_for() -> None:
    assert schema_name_for({"type": "dtmf"}, kind="event") == "event.dtmf"
    assert schema_name_for({"type": "session.started"}, kind="event") == "event.session.started"
    assert schema_name_for({"type": "request"}, kind="command") == "command.request"
    assert schema_name_for({"type": "audio"}, kind="audio") == "audio-chunk"
    assert schema_name_for({"type": "reply"}, kind="reply") == "reply"
    unknown: list[tuple[dict[str, Any], BodyKind]] = [
        ({"type": "nope"}, "event"),
        ({"type": "dtmf"}, "command"),
        ({}, "command"),
        ({"type": 7}, "event"),
        ({"type": "../../pyproject.toml#"}, "event"),
    ]
    for body, kind in unknown:
        with pytest.raises(ValueError):
            schema_name_for(body, kind=kind)


def test_jsonable_turns_bytes_into_base64_recursively() -> None:
    value = {"a": b"\x00\xff", "b": (bytearray(b"hi"), [memoryview(b"yo"), 1]), "c": {"d": None, "e": "text"}}
    assert jsonable(value) == {"a": "AP8=", "b": ["aGk=", ["eW8=", 1]], "c": {"d": None, "e": "text"}}
    assert value["a"] == b"\x00\xff"  # input untouched


def test_schema_dir_is_the_repo_schemas_folder() -> None:
    assert SCHEMA_DIR == REPO / "schemas"


def test_bridge_schemas_imports_without_jsonschema() -> None:
    code = (
        "import sys; sys.modules['jsonschema'] = None; sys.modules['referencing'] = None\n"
        "import bridge.schemas as s\n"
        "assert s.schema_name_for({'type': 'dtmf'}, kind='event') == 'event.dtmf'\n"
        "assert s.jsonable(b'x') == 'eA=='\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


# ---------------------------------------------------------------- AsyncAPI document

ASYNCAPI = yaml.safe_load((SCHEMA_DIR / "asyncapi.yaml").read_text(encoding="utf-8"))


def _pointer(document: Any, pointer: str) -> Any:
    node = document
    for part in filter(None, pointer.split("/")):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _resolve(ref: str) -> Any:
    target, _, fragment = ref.partition("#")
    if not target:
        return _pointer(ASYNCAPI, fragment)
    path = SCHEMA_DIR / target
    assert path.is_file(), ref
    return _pointer(_load(path), fragment)


def _official_asyncapi_schema() -> dict[str, Any]:
    """The AsyncAPI 3.0.0 meta-schema `make test` fetches (scripts/fetch-asyncapi-schema.sh)."""
    path = Path(os.environ.get("ASYNCAPI_SCHEMA", REPO / ".tools" / "asyncapi" / "3.0.0.json"))
    if not path.is_file():
        pytest.fail(f"{path} missing: run `make asyncapi-schema` (make test and make unit do it)")
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def test_asyncapi_document_is_valid_against_the_official_3_0_0_schema() -> None:
    validator = Draft7Validator(_official_asyncapi_schema())
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(ASYNCAPI)]
    assert errors == []
    # ... and the meta-schema does catch a broken document (a channel address must be a string).
    broken = copy.deepcopy(ASYNCAPI)
    next(iter(broken["channels"].values()))["address"] = 5
    assert not validator.is_valid(broken)


def test_asyncapi_is_version_3_with_both_servers() -> None:
    assert ASYNCAPI["asyncapi"] == "3.0.0"
    assert ASYNCAPI["defaultContentType"] == "application/msgpack"
    assert {"amqp", "local"} <= set(ASYNCAPI["servers"])
    assert all(server["protocol"] == "amqp" for server in ASYNCAPI["servers"].values())


def test_asyncapi_every_ref_resolves() -> None:
    for ref in _refs(ASYNCAPI):
        try:
            _resolve(ref)
        except (KeyError, TypeError) as exc:
            pytest.fail(f"{ref} does not resolve: {exc!r}")


def test_asyncapi_operations_use_existing_channels_and_their_own_messages() -> None:
    channels = ASYNCAPI["channels"]
    for name, operation in ASYNCAPI["operations"].items():
        assert operation["action"] in {"send", "receive"}, name
        channel_ref = operation["channel"]["$ref"]
        assert channel_ref.startswith("#/channels/") and _resolve(channel_ref) in channels.values(), name
        assert operation["messages"], name
        for message in operation["messages"]:
            assert message["$ref"].startswith(f"{channel_ref}/messages/"), (name, message)
        if "reply" in operation:
            reply_spec = _resolve(operation["reply"]["$ref"])
            assert _resolve(reply_spec["channel"]["$ref"]) is channels["replies"]
            assert reply_spec["address"]["location"].startswith("$message.")


def test_asyncapi_consumer_sends_commands_and_receives_the_rest() -> None:
    actions: dict[str, set[str]] = {op["channel"]["$ref"]: set() for op in ASYNCAPI["operations"].values()}
    for operation in ASYNCAPI["operations"].values():
        actions[operation["channel"]["$ref"]].add(operation["action"])
    assert actions.pop("#/channels/commands") == {"send"}
    assert all(found == {"receive"} for found in actions.values())


def test_asyncapi_messages_are_msgpack_with_2020_12_payloads_matching_the_type() -> None:
    traits = ASYNCAPI["components"]["messageTraits"]
    for name, message in ASYNCAPI["components"]["messages"].items():
        content_types = {message.get("contentType")} | {
            _resolve(t["$ref"]).get("contentType") for t in message["traits"]
        }
        assert "application/msgpack" in content_types, name
        payload = message["payload"]
        assert payload["schemaFormat"] == "application/schema+json;version=draft-2020-12", name
        schema = _resolve(payload["schema"]["$ref"])
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema", name
        assert message["name"] == schema["properties"]["type"]["const"], name
    for trait in traits.values():
        assert trait["headers"]["schemaFormat"] == "application/schema+json;version=draft-2020-12"
    published_headers = _resolve(traits["published"]["headers"]["schema"]["$ref"])
    assert {"session_id", "traceparent", "tracestate"} <= set(published_headers["properties"])


def test_asyncapi_references_every_schema_file() -> None:
    referenced = {
        ref.partition("#")[0].removeprefix("./") for ref in _refs(ASYNCAPI) if not ref.startswith("#")
    }
    assert referenced == {path.name for path in SCHEMA_FILES}


def test_asyncapi_event_type_parameter_lists_every_event_schema() -> None:
    enum = ASYNCAPI["channels"]["events"]["parameters"]["eventType"]["enum"]
    assert sorted(enum) == sorted(EVENT_TYPES)


def test_asyncapi_amqp_bindings_follow_the_contract() -> None:
    def exchange(channel: str) -> tuple[str, str, bool]:
        found = ASYNCAPI["channels"][channel]["bindings"]["amqp"]["exchange"]
        return found["name"], found["type"], found["durable"]

    assert exchange("events") == ("rtvbp.events", "topic", True)
    assert exchange("callerAudio") == exchange("playedAudio") == ("rtvbp.audio", "topic", True)
    assert exchange("commands") == ("rtvbp.commands", "direct", True)
    assert exchange("unroutableCommands") == ("rtvbp.unroutable", "fanout", True)
    commands = ASYNCAPI["channels"]["commands"]["bindings"]["amqp"]
    assert commands["x-exchange-arguments"] == {"alternate-exchange": "rtvbp.unroutable"}
    addresses = {name: channel["address"] for name, channel in ASYNCAPI["channels"].items()}
    assert addresses["events"] == "{session}.{eventType}"
    assert addresses["callerAudio"] == "{session}.in"
    assert addresses["playedAudio"] == "{session}.out"
    assert addresses["commands"] == "{session}"
    assert addresses["replies"] is None
