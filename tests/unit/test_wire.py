"""Strict JSON both ways: what `loads` rejects, how `dumps` spells values, `canonical` ordering."""

from __future__ import annotations

import enum
import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.protocol import wire

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


def nested(depth: int, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + close * depth


def nested_objects(depth: int) -> str:
    return '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)


# ------------------------------------------------------------------------------------------ loads


def test_loads_parses_str_and_bytes() -> None:
    text = '{"a":[1,2.5,"é",true,false,null],"b":{}}'
    expected = {"a": [1, 2.5, "é", True, False, None], "b": {}}
    assert wire.loads(text) == expected
    assert wire.loads(text.encode("utf-8")) == expected
    assert wire.loads(bytearray(text.encode("utf-8"))) == expected


@pytest.mark.parametrize(
    "text",
    ["", "{", "[1,]", "{'a':1}", "01", "tru", '"\x01"', "1 2", "\ufeff{}", "[1] x"],
)
def test_loads_rejects_invalid_json(text: str) -> None:
    with pytest.raises(wire.WireError, match="invalid JSON"):
        wire.loads(text)


@pytest.mark.parametrize(
    "raw",
    [b"\xff", b'{"a":"\xc3"}', b'"\xed\xa0\x80"', b'"\xc0\xaf"', b"\xef\xbb\xbf{}", b"\xfe\xff\x00{\x00}"],
)
def test_loads_rejects_invalid_utf8_and_non_utf8_encodings(raw: bytes) -> None:
    with pytest.raises(wire.WireError):
        wire.loads(raw)


@pytest.mark.parametrize(
    "text",
    ['{"a":1,"a":2}', '{"a":1,"b":{"c":1,"c":1}}', '[{"x":{}},{"y":[{"k":1,"k":null}]}]', '{"a":1,"a":1}'],
)
def test_loads_rejects_duplicate_keys_at_any_depth(text: str) -> None:
    with pytest.raises(wire.WireError, match="duplicate object key"):
        wire.loads(text)


def test_loads_keeps_distinct_keys_that_look_alike() -> None:
    assert wire.loads('{"a":1,"A":2,"a ":3}') == {"a": 1, "A": 2, "a ": 3}


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", '{"x":NaN}', "[1,Infinity]"])
def test_loads_rejects_non_finite_literals(text: str) -> None:
    with pytest.raises(wire.WireError):
        wire.loads(text)


@pytest.mark.parametrize("text", ["1e400", "-1e400", '{"x":[1.7976931348623159e308]}'])
def test_loads_rejects_numbers_that_overflow_float64(text: str) -> None:
    with pytest.raises(wire.WireError, match="out of float64 range"):
        wire.loads(text)


def test_loads_integer_range_is_int64() -> None:
    assert wire.loads(str(INT64_MAX)) == INT64_MAX
    assert wire.loads(str(INT64_MIN)) == INT64_MIN
    for text in (str(INT64_MAX + 1), str(INT64_MIN - 1), "1" * 25, "-" + "9" * 5000):
        with pytest.raises(wire.WireError, match="int64"):
            wire.loads(f'{{"n":{text}}}')


def test_loads_keeps_floats_as_floats() -> None:
    assert wire.loads("1.0") == 1.0 and type(wire.loads("1.0")) is float
    assert type(wire.loads("1e3")) is float
    assert type(wire.loads("-0")) is int


def test_loads_nesting_limit_is_64() -> None:
    assert wire.loads(nested(64)) is not None
    assert wire.loads(nested_objects(64)) is not None
    for text in (nested(65), nested_objects(65), "[" * 32 + nested_objects(33) + "]" * 32):
        with pytest.raises(wire.WireError, match="nesting deeper than 64"):
            wire.loads(text)


def test_loads_counts_only_real_brackets() -> None:
    brackets_in_strings = json.dumps({"s": "[{" * 500 + '\\"]', "t": ["]]]}}}"]})
    assert wire.loads(brackets_in_strings)["t"] == ["]]]}}}"]
    many_shallow = "[" + ",".join(["[]"] * 500) + "]"
    assert len(wire.loads(many_shallow)) == 500


@pytest.mark.parametrize("depth", [1_000, 100_000, 1_000_000])
def test_loads_survives_absurd_nesting(depth: int) -> None:
    for text in (nested(depth), "[" * depth, '{"a":' * depth, nested(depth).encode()):
        with pytest.raises(wire.WireError):
            wire.loads(text)


@pytest.mark.parametrize("text", ['"\\ud800"', '{"\\udc00":1}', '["ok","\\uDBFF x"]', '"\\ude00\\ud83d"'])
def test_loads_rejects_unpaired_surrogate_escapes(text: str) -> None:
    with pytest.raises(wire.WireError, match="surrogate"):
        wire.loads(text)


def test_loads_accepts_paired_surrogates_and_escaped_backslashes() -> None:
    assert wire.loads('"\\ud83d\\ude00"') == "\U0001f600"
    assert wire.loads('"\\\\ud800"') == "\\ud800"


def test_loads_rejects_raw_lone_surrogate_in_text() -> None:
    with pytest.raises(wire.WireError, match="surrogate"):
        wire.loads('"\ud800"')


def test_loads_rejects_non_text_input() -> None:
    with pytest.raises(wire.WireError):
        wire.loads(123)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ dumps


def test_dumps_is_compact_ordered_and_unescaped() -> None:
    value = {"z": 1, "a": [True, False, None, "é€😀"], "m": {"b": 2, "a": 1}}
    assert wire.dumps(value) == '{"z":1,"a":[true,false,null,"é€😀"],"m":{"b":2,"a":1}}'
    assert wire.dumps(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def test_dumps_escapes_like_json() -> None:
    text = 'quote " backslash \\ nl \n tab \t ctl \x01 del \x7f <>& \u2028'
    assert wire.dumps(text) == json.dumps(text, ensure_ascii=False)
    assert json.loads(wire.dumps(text)) == text


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, [1.0, math.nan], {"x": math.inf}])
def test_dumps_rejects_non_finite(value: Any) -> None:
    with pytest.raises(wire.WireError):
        wire.dumps(value)


def test_dumps_rejects_negative_zero_float() -> None:
    with pytest.raises(wire.WireError, match="-0"):
        wire.dumps({"x": -0.0})
    assert wire.dumps(0.0) == "0"


def test_dumps_integer_range_is_javascript_safe() -> None:
    assert wire.dumps(wire.MAX_SAFE_INT) == "9007199254740991"
    assert wire.dumps(-wire.MAX_SAFE_INT) == "-9007199254740991"
    for value in (wire.MAX_SAFE_INT + 1, -wire.MAX_SAFE_INT - 1, INT64_MAX):
        with pytest.raises(wire.WireError, match="safe range"):
            wire.dumps([value])


def test_dumps_bool_is_not_an_int() -> None:
    assert wire.dumps([True, False, 1, 0]) == "[true,false,1,0]"


@pytest.mark.parametrize(
    ("value", "spelled"),
    [(12800.0, "12800"), (106.66666666666667, "106.66666666666667"), (1.5, "1.5"), (-2.0, "-2"),
     (1e-7, "1e-7"), (1e21, "1e+21"), (1e20, "100000000000000000000"), (0.1, "0.1")],
)  # fmt: skip
def test_dumps_spells_floats_the_go_way(value: float, spelled: str) -> None:
    assert wire.dumps(value) == spelled
    assert wire.dumps({"v": value}) == f'{{"v":{spelled}}}'


@pytest.mark.parametrize("key", [1, None, 1.5, ("a",), True])
def test_dumps_rejects_non_string_keys(key: Any) -> None:
    with pytest.raises(wire.WireError, match="key"):
        wire.dumps({key: 1})


@pytest.mark.parametrize("value", [{1, 2}, b"bytes", object(), 1 + 2j, {"a": [bytearray(b"x")]}])
def test_dumps_rejects_non_json_types(value: Any) -> None:
    with pytest.raises(wire.WireError, match="not JSON-serialisable"):
        wire.dumps(value)


def test_dumps_rejects_unpaired_surrogates() -> None:
    with pytest.raises(wire.WireError, match="surrogate"):
        wire.dumps({"k": "\udc00"})
    with pytest.raises(wire.WireError, match="surrogate"):
        wire.dumps({"\ud800": 1})


def test_dumps_tuples_and_enum_subclasses() -> None:
    class Colour(enum.StrEnum):
        RED = "red"

    class Level(enum.IntEnum):
        HIGH = 3

    assert wire.dumps((1, (2,))) == "[1,[2]]"
    assert wire.dumps({Colour.RED: [Colour.RED, Level.HIGH]}) == '{"red":["red",3]}'


def test_dumps_depth_limit_and_cycles() -> None:
    assert wire.dumps(json.loads(nested(64))) == nested(64)
    with pytest.raises(wire.WireError, match="nesting"):
        wire.dumps(json.loads(nested(65)))
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    with pytest.raises(wire.WireError, match="nesting"):
        wire.dumps(cyclic)


# -------------------------------------------------------------------------------------- canonical


def test_canonical_sorts_every_object_deeply_and_copies() -> None:
    original = {"b": 1, "a": {"d": [{"z": 1, "y": 2}], "c": None}}
    result = wire.canonical(original)
    assert wire.dumps(result) == '{"a":{"c":null,"d":[{"y":2,"z":1}]},"b":1}'
    assert list(original) == ["b", "a"]  # input untouched
    result["a"]["d"][0]["x"] = 0
    assert "x" not in original["a"]["d"][0]  # a deep copy


def test_canonical_order_is_go_utf8_byte_order() -> None:
    keys = ["é", "z", "A", "a", "\U0001f600", "\uffff", "", "aa", "Z"]
    result = wire.canonical(dict.fromkeys(keys, 0))
    assert list(result) == sorted(keys, key=lambda k: k.encode("utf-8"))


def test_canonical_keeps_lists_in_order_and_scalars_as_is() -> None:
    assert wire.canonical([3, 1, 2]) == [3, 1, 2]
    assert wire.canonical((1, 2)) == [1, 2]
    assert wire.canonical("x") == "x"
    assert wire.canonical(None) is None


def test_canonical_rejects_non_string_keys_and_deep_values() -> None:
    with pytest.raises(wire.WireError):
        wire.canonical({"a": {1: "x", "b": "y"}})
    with pytest.raises(wire.WireError):
        wire.canonical(json.loads(nested(100)))


# ---------------------------------------------------------------------------------- properties

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-wire.MAX_SAFE_INT, max_value=wire.MAX_SAFE_INT)
    # Integral floats are spelled as integers (Go), so keep them where integers may go: the safe range.
    | st.floats(min_value=-wire.MAX_SAFE_INT, max_value=wire.MAX_SAFE_INT).filter(
        lambda f: not (f == 0 and math.copysign(1, f) < 0)
    )
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


@given(json_values)
def test_dumps_loads_round_trip(value: Any) -> None:
    text = wire.dumps(value)
    assert wire.loads(text) == value
    assert json.loads(text) == value  # the stdlib agrees it is plain JSON
    assert wire.dumps(wire.loads(text)) == text


@given(json_values)
def test_canonical_is_stable_and_equal(value: Any) -> None:
    once = wire.canonical(value)
    assert once == json.loads(json.dumps(value))  # same content, only key order may change
    assert wire.dumps(wire.canonical(once)) == wire.dumps(once)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_go_float_round_trips_and_follows_go_notation(value: float) -> None:
    spelled = wire.go_float(value)
    assert float(spelled) == value
    assert math.copysign(1, float(spelled)) == math.copysign(1, value)
    magnitude = abs(value)
    uses_exponent = magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21)
    assert ("e" in spelled) is uses_exponent
    assert "e-0" not in spelled and "e+0" not in spelled
    if value.is_integer() and not uses_exponent:
        assert "." not in spelled and spelled.lstrip("-").isdigit()


def strict_json_verdict(text: str | bytes) -> tuple[bool, Any]:
    """An independent reading of the rules (RFC 8259 + the profile's limits), on the stdlib parser alone:
    UTF-8, no NaN/Infinity, no duplicate keys, int64 integers, finite floats, paired surrogates, depth
    <= 64. Returns (acceptable, value)."""
    bad: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        if len({k for k, _ in items}) != len(items):
            bad.append("duplicate key")
        return dict(items)

    def integer(literal: str) -> int:
        value = int(literal)
        if not -(2**63) <= value < 2**63:
            bad.append("int64")
        return value

    def number(literal: str) -> float:
        value = float(literal)
        if math.isinf(value):
            bad.append("float64")
        return value

    def constant(name: str) -> float:
        bad.append(name)
        return 0.0

    def clean(value: Any, depth: int) -> bool:
        if isinstance(value, str):
            return not any(0xD800 <= ord(c) <= 0xDFFF for c in value)
        children = (
            list(value.items()) if isinstance(value, dict) else value if isinstance(value, list) else None
        )
        if children is None:
            return True
        if depth > 64:
            return False
        if isinstance(value, dict):
            return all(clean(k, depth) and clean(v, depth + 1) for k, v in value.items())
        return all(clean(v, depth + 1) for v in value)

    try:
        raw = text.decode("utf-8") if isinstance(text, bytes) else text
        raw.encode("utf-8")
        value = json.loads(
            raw, object_pairs_hook=pairs, parse_int=integer, parse_float=number, parse_constant=constant
        )
    except (UnicodeError, ValueError, RecursionError):
        return False, None
    return not bad and clean(value, 1), value


def assert_loads_agrees(text: str | bytes) -> None:
    acceptable, expected = strict_json_verdict(text)
    try:
        value = wire.loads(text)
    except wire.WireError:
        assert not acceptable, f"rejected valid JSON {text!r}"
        return
    assert acceptable, f"accepted invalid JSON {text!r}"
    assert value == expected


@pytest.mark.parametrize(
    "text",
    ["NaN", "[1e999]", '{"a":1,"a":2}', str(2**63), '"\\ud800"', "[" * 65 + "]" * 65, b"\xff", "[1,]"],
)
def test_loads_rejects_what_the_rules_reject(text: str | bytes) -> None:
    assert_loads_agrees(text)
    with pytest.raises(wire.WireError):
        wire.loads(text)


@settings(max_examples=300)
@given(st.text())
def test_loads_accepts_exactly_valid_json_on_any_text(text: str) -> None:
    assert_loads_agrees(text)


@settings(max_examples=300)
@given(st.binary())
def test_loads_accepts_exactly_valid_json_on_any_bytes(raw: bytes) -> None:
    assert_loads_agrees(raw)


json_like_text = st.recursive(
    st.sampled_from(
        ["0", "-0", "1e999", "NaN", "1.5", '"\\ud800"', '"x"', "null", str(2**64), "true", "9" * 30]
    ),
    lambda inner: (
        st.lists(inner, max_size=4).map(lambda xs: "[" + ",".join(xs) + "]")
        | st.lists(st.tuples(st.sampled_from(['"a"', '"b"', '"a"']), inner), max_size=4).map(
            lambda kvs: "{" + ",".join(f"{k}:{v}" for k, v in kvs) + "}"
        )
    ),
    max_leaves=40,
)


@settings(max_examples=300)
@given(json_like_text, st.integers(min_value=0, max_value=200))
def test_loads_accepts_exactly_valid_json_on_tricky_json(text: str, depth: int) -> None:
    for candidate in (text, "[" * depth + text + "]" * depth, text[: len(text) // 2]):
        assert_loads_agrees(candidate)
