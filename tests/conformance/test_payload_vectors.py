"""Generated payload vectors (`payloads/<method>.json`) and the catalog manifest.

The manifest (`spec/manifests/babelforce.v1.catalog.json`) is the typed source the SDKs are generated
from; here it drives the checks of our hand-written catalog: operations/events and their roles, wire
field order, required/nullable/optional presence, and every validation rule (`minLength`, `minimum`,
`x-rtvbp-nonzero`, `x-rtvbp-field-order`), with the SDK validators' messages.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.protocol import catalog, wire

# ------------------------------------------------------------------------------- generated vectors


def _decode(case: Any, text: str) -> catalog.Payload:
    decode = catalog.decode_params if case.direction == "request" else catalog.decode_result
    return decode(case.method, wire.loads(text))


def test_payload_vector(payload_case: Any, manifest: dict[str, Any]) -> None:
    case = payload_case
    assert case.file.stem == case.method
    spec = catalog.OPERATIONS[case.method]
    assert getattr(spec, case.direction).__name__ == case.schema
    if case.error is None:
        value = _decode(case, case.json)
        assert type(value).__name__ == case.schema
        value.validate()
        assert wire.dumps(value.to_wire()) == case.json
    elif case.error == "decode":
        with pytest.raises((wire.WireError, catalog.PayloadDecodeError)):
            _decode(case, case.json)
    else:
        assert case.error == "validation", case.error
        with pytest.raises(catalog.PayloadValidationError) as raised:
            _decode(case, case.json)
        _assert_names_rule(str(raised.value), case.name, manifest["schemas"][case.schema])


def _assert_names_rule(message: str, case_name: str, schema: dict[str, Any]) -> None:
    """Vector names read `<field>_<rule>`; the message must be that rule's, for that field."""
    for field, prop in schema.get("properties", {}).items():
        if case_name == f"{field}_min_length":
            assert message == f"{field} must contain at least {prop['minLength']} character(s)"
            return
        if case_name == f"{field}_nonzero":
            assert message == f"{field} must be non-zero"
            return
    assert any(field in message for field in schema.get("properties", {})), (case_name, message)


# -------------------------------------------------------------------------------------- registry


def _ref(node: dict[str, Any]) -> str:
    ref: str = node["$ref"]
    return ref.rsplit("/", 1)[-1]


def test_operations_match_manifest(manifest: dict[str, Any]) -> None:
    declared = {op["method"]: op for op in manifest["operations"]}
    assert set(catalog.OPERATIONS) == set(declared)
    for method, op in declared.items():
        spec = catalog.OPERATIONS[method]
        assert spec.method == method
        assert spec.handled_by == op["handledBy"], method
        assert spec.terminal is op["terminal"], method
        assert spec.request.__name__ == _ref(op["request"]), method
        assert spec.response.__name__ == _ref(op["response"]), method


def test_reverse_terminate_rejection_matches_manifest(manifest: dict[str, Any]) -> None:
    rejections = [r for op in manifest["operations"] for r in op["rejections"]]
    assert {(r["role"], r["code"], r["message"]) for r in rejections} == {
        ("voice", 501, catalog.REVERSE_TERMINATE_MESSAGE)
    }


def test_events_match_manifest(manifest: dict[str, Any]) -> None:
    declared = {event["name"]: event for event in manifest["events"]}
    assert set(catalog.EVENTS) == set(declared)
    for name, event in declared.items():
        spec = catalog.EVENTS[name]
        assert spec.name == name
        assert spec.emitted_by == event["emittedBy"], name
        assert spec.data.__name__ == _ref(event["data"]), name


def test_manifest_examples_round_trip(manifest: dict[str, Any]) -> None:
    for op in manifest["operations"]:
        for example in op["examples"]:
            request = catalog.decode_params(op["method"], example["request"])
            assert wire.dumps(request.to_wire()) == wire.dumps(example["request"]), op["method"]
            response = catalog.decode_result(op["method"], example["response"])
            assert wire.dumps(response.to_wire()) == wire.dumps(example["response"]), op["method"]
    for event in manifest["events"]:
        for example in event["examples"]:
            data = catalog.decode_event_data(event["name"], example["data"])
            assert wire.dumps(data.to_wire()) == wire.dumps(example["data"]), event["name"]


# ----------------------------------------------------------------------- schemas, field by field


class _Samples:
    """Builds a fully-populated wire object for a manifest schema (every property present)."""

    def __init__(self, manifest: dict[str, Any]) -> None:
        self.schemas: dict[str, Any] = manifest["schemas"]

    def obj(self, name: str) -> dict[str, Any]:
        schema = self.schemas[name]
        if "properties" not in schema:
            return {"attempt": 2, "customer": "Ada"} if schema.get("additionalProperties") else {}
        return {key: self.value(prop) for key, prop in schema["properties"].items()}

    def value(self, prop: dict[str, Any]) -> Any:
        if "$ref" in prop:
            return self.obj(_ref(prop))
        if "anyOf" in prop:
            return self.value(next(p for p in prop["anyOf"] if p.get("type") != "null"))
        kind = _main_type(prop)
        if kind == "string":
            return "v" * max(2, prop.get("minLength", 0))
        if kind == "integer":
            return max(7, prop.get("minimum", 7))
        if kind == "number":
            return 106.66666666666667
        if kind == "array":
            return [self.value(prop["items"])]
        return {"nested": {"a": 1, "b": [True, None]}, "z": "last"}  # free-form object / any


def _main_type(prop: dict[str, Any]) -> str | None:
    kind = prop.get("type")
    if isinstance(kind, list):
        return next((k for k in kind if k != "null"), None)
    return kind


def _payload_class(name: str) -> type[catalog.Payload]:
    cls = getattr(catalog, name)
    assert isinstance(cls, type)
    assert issubclass(cls, catalog.Payload)
    return cls


def _required(schema: dict[str, Any]) -> set[str]:
    return set(schema.get("required", []))


def test_schema_has_a_frozen_slotted_type(manifest_schema: str) -> None:
    cls = _payload_class(manifest_schema)
    assert dataclasses.is_dataclass(cls)
    assert "__slots__" in vars(cls)
    assert cls.__dataclass_params__.frozen  # type: ignore[attr-defined]


def test_full_object_round_trips_in_wire_order(manifest_schema: str, manifest: dict[str, Any]) -> None:
    samples = _Samples(manifest)
    sample = samples.obj(manifest_schema)
    value = _payload_class(manifest_schema).from_wire(sample)
    encoded = value.to_wire()
    properties = list(manifest["schemas"][manifest_schema].get("properties", {}))
    if properties:
        assert list(encoded) == properties
    assert wire.dumps(encoded) == wire.dumps(sample)
    if properties:  # unknown fields are tolerated and dropped (an open map keeps every key)
        assert _payload_class(manifest_schema).from_wire({**sample, "x-unknown": [1, {"b": 2}]}) == value


def test_presence_rules(manifest_schema: str, manifest: dict[str, Any]) -> None:
    """Required-nullable keys are always written (null when empty); optional keys are omitted."""
    schema = manifest["schemas"][manifest_schema]
    cls = _payload_class(manifest_schema)
    full = _Samples(manifest).obj(manifest_schema)
    for key, prop in schema.get("properties", {}).items():

        def nulled(key: str = key) -> dict[str, Any]:
            return cls.from_wire({**full, key: None}).to_wire()

        if prop.get("x-rtvbp-presence") == "nullable":
            assert key in _required(schema)
            assert nulled()[key] is None
        elif key not in _required(schema):
            without = {k: v for k, v in full.items() if k != key}
            assert key not in cls.from_wire(without).to_wire(), key
            assert key not in nulled(), key  # null for an optional key means absent
        elif _main_type(prop) == "array":
            assert nulled()[key] == []  # Go's nil slice arrives as null; we always send []
        elif _main_type(prop) == "object":
            assert nulled()[key] == {}


def _rule_violations(schema: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    """(override, expected validator message) for every rule the manifest declares."""
    violations: list[tuple[dict[str, Any], str]] = []
    for key, prop in schema.get("properties", {}).items():
        if "minLength" in prop:
            short = "v" * (prop["minLength"] - 1)
            violations.append(({key: short}, f"{key} must contain at least {prop['minLength']} character(s)"))
        if "minimum" in prop:
            violations.append(({key: prop["minimum"] - 1}, f"{key} must be >= {prop['minimum']}"))
        if prop.get("x-rtvbp-nonzero"):
            violations.append(({key: 0}, f"{key} must be non-zero"))
    for order in schema.get("x-rtvbp-field-order", []):
        lower, upper = order["lower"], order["upper"]
        violations.append(
            ({lower: 20, upper: 10}, f"{upper} must be greater than or equal to {lower}"),
        )
    return violations


def test_validation_rules(manifest_schema: str, manifest: dict[str, Any]) -> None:
    schema = manifest["schemas"][manifest_schema]
    cls = _payload_class(manifest_schema)
    full = _Samples(manifest).obj(manifest_schema)
    valid = cls.from_wire(full)
    for override, message in _rule_violations(schema):
        with pytest.raises(catalog.PayloadValidationError) as raised:
            cls.from_wire({**full, **override})
        assert str(raised.value) == message
        # Strict on output: the same value built in code cannot be sent either.
        fields = {_attr(cls, key): value for key, value in override.items()}
        invalid = dataclasses.replace(valid, **fields)  # type: ignore[type-var]
        with pytest.raises(catalog.PayloadValidationError, match=re.escape(message)):
            invalid.to_wire()
    for key in schema.get("properties", {}):
        if key in _required(schema) and "minLength" in schema["properties"][key]:
            # An absent required string decodes to "" (Go's zero value) and fails like an empty one.
            with pytest.raises(catalog.PayloadValidationError):
                cls.from_wire({k: v for k, v in full.items() if k != key})


def _attr(cls: type[catalog.Payload], key: str) -> str:
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return key if key in names else f"{key}_"


_WRONG = {
    "string": [5, True, [], {}],
    "integer": ["7", 7.5, True, False, [], {}, 2**63],
    "number": ["1.5", True, [], {}],
    "array": ["x", 5, {}],
    "object": ["x", 5, []],
}


def test_wrong_json_types_are_decode_errors(manifest_schema: str, manifest: dict[str, Any]) -> None:
    schema = manifest["schemas"][manifest_schema]
    cls = _payload_class(manifest_schema)
    full = _Samples(manifest).obj(manifest_schema)
    for key, prop in schema.get("properties", {}).items():
        kind = "object" if ("$ref" in prop or "anyOf" in prop) else _main_type(prop)
        for wrong in _WRONG.get(kind or "", []):
            with pytest.raises(catalog.PayloadDecodeError) as raised:
                cls.from_wire({**full, key: wrong})
            assert str(raised.value).startswith(f"decode {manifest_schema}: {key}"), str(raised.value)
    for top_level in ([], "x", 5, True):
        with pytest.raises(catalog.PayloadDecodeError):
            cls.from_wire(top_level)


# ------------------------------------------------------------------ fuzzing against the upstream schemas


PAYLOAD_CLASSES = [
    cls
    for cls in vars(catalog).values()
    if isinstance(cls, type) and issubclass(cls, catalog.Payload) and cls is not catalog.Payload
]


_VALIDATORS: dict[tuple[str, bool], jsonschema.Draft202012Validator] = {}


def _upstream_violations(
    manifest: dict[str, Any], name: str, obj: Any, *, lenient: bool = False
) -> list[str]:
    """What the upstream JSON Schema (plus its `x-rtvbp-nonzero`) finds wrong with `obj`: an oracle that
    shares no code with the hand-written catalog. `lenient` reads input as a Go peer does (protocol.md
    1.6): an absent or null field is its zero value, so only the values that are there are type-checked."""
    schemas = manifest["schemas"]
    if lenient:
        obj = _without_nulls(obj)
    key = (name, lenient)
    if key not in _VALIDATORS:
        root = {"$ref": f"#/schemas/{name}", "schemas": _without(schemas, "required") if lenient else schemas}
        _VALIDATORS[key] = jsonschema.Draft202012Validator(root)
    found = [e.message for e in _VALIDATORS[key].iter_errors(obj)]
    if not lenient and isinstance(obj, dict):
        for field, prop in schemas[name].get("properties", {}).items():
            value = obj.get(field)
            if prop.get("x-rtvbp-nonzero") and value == 0 and type(value) is not bool:
                found.append(f"{field} is zero")
    return found


def _without(node: Any, keyword: str) -> Any:
    if isinstance(node, dict):
        return {k: _without(v, keyword) for k, v in node.items() if k != keyword}
    if isinstance(node, list):
        return [_without(v, keyword) for v in node]
    return node


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):  # Go leaves a null element at its zero value too
        return [_without_nulls(v) for v in value if v is not None]
    return value


def test_the_fuzz_oracle_sees_what_the_vectors_reject(manifest: dict[str, Any]) -> None:
    assert _upstream_violations(manifest, "PingRequest", {"t0": 1}) == []
    assert _upstream_violations(manifest, "PingRequest", {"t0": 0})
    assert _upstream_violations(manifest, "PingRequest", {"t0": "1"}, lenient=True)
    assert _upstream_violations(manifest, "PingRequest", {"t0": True}, lenient=True)
    assert _upstream_violations(manifest, "AgentToolCallEvent", {})
    assert _upstream_violations(manifest, "AgentToolCallEvent", {}, lenient=True) == []


@functools.cache
def _objects_with_keys(keys: tuple[str, ...]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects made of a schema's own field names, with values of every JSON type (nested too)."""
    leaf = st.sampled_from([None, True, False, 0, 1, -1, 2**40, 0.5, "", "a"]) | st.floats(allow_nan=False)
    nested = st.recursive(leaf, lambda c: st.lists(c, max_size=2) | st.dictionaries(st.sampled_from(keys), c))
    return st.dictionaries(st.sampled_from(keys), leaf | leaf | nested, min_size=1, max_size=len(keys))


@pytest.mark.parametrize("cls", sorted(PAYLOAD_CLASSES, key=lambda c: c.__name__), ids=lambda c: c.__name__)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_from_wire_accepts_only_what_the_upstream_schema_allows(
    manifest: dict[str, Any], cls: type[catalog.Payload], data: st.DataObject
) -> None:
    schema = manifest["schemas"][cls.__name__]
    obj = data.draw(_objects_with_keys(tuple(sorted(schema.get("properties", {})) or ["x"])))
    try:
        decoded = cls.from_wire(obj)
    except catalog.PayloadError:
        return
    # read leniently, every field given had the upstream type; what we would send back is strictly valid
    assert _upstream_violations(manifest, cls.__name__, obj, lenient=True) == [], (cls.__name__, obj)
    assert _upstream_violations(manifest, cls.__name__, decoded.to_wire()) == [], (cls.__name__, obj)
