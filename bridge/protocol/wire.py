"""Strict JSON for RTVBP control frames, both ways.

Peers differ in what they tolerate: the TypeScript SDK drops a whole frame for duplicate keys, `-0`,
non-finite numbers or integers outside ±(2**53-1); Go rejects numbers that do not fit its types. So we
reject on input what is ambiguous (duplicate keys, NaN, integers beyond int64, unpaired surrogates,
absurd nesting) and never emit anything a peer might drop. Floats are spelled the way Go's
`encoding/json` spells them, because that is the byte authority of the golden fixtures.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from json.encoder import encode_basestring
from typing import Any, NoReturn

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "MAX_DEPTH",
    "MAX_SAFE_INT",
    "WireError",
    "canonical",
    "dumps",
    "go_float",
    "loads",
]


class WireError(ValueError):
    """Input is not acceptable JSON, or a value cannot be sent as JSON."""


MAX_SAFE_INT = 2**53 - 1
MAX_DEPTH = 64
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # Go's int: the widest integer any peer decodes
_INT64_MAX_DIGITS = 20  # "-9223372036854775808"; longer literals are out of range anyway

# A string (its closing quote optional, so a scan never backtracks: linear on any input) or a bracket.
# On the valid prefix of a text, the only part a parser recurses into, this tokenisation is exact.
_DEPTH_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[{]|[\]}]', re.DOTALL)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _fail(message: str) -> NoReturn:
    raise WireError(message)


# --------------------------------------------------------------------------------------------- loads


def _object_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                _fail(f"duplicate object key {key!r}")
            seen.add(key)
    return obj


def _parse_int(literal: str) -> int:
    if len(literal) > _INT64_MAX_DIGITS:
        _fail(f"integer {literal[:24]}... does not fit int64")
    value = int(literal)
    if not INT64_MIN <= value <= INT64_MAX:
        _fail(f"integer {literal} does not fit int64")
    return value


def _parse_float(literal: str) -> float:
    value = float(literal)
    if math.isinf(value):
        _fail(f"number {literal[:24]} is out of float64 range")
    return value


def _parse_constant(name: str) -> NoReturn:
    _fail(f"{name} is not a JSON value")


def _too_deep(text: str) -> bool:
    """Whether containers nest deeper than MAX_DEPTH, decided before the recursive parser runs."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:  # the common case, at C speed
        return False
    depth = 0
    for match in _DEPTH_TOKEN.finditer(text):  # lazily: a deep prefix stops the scan early
        first = match.group()[0]
        if first == '"':
            continue
        if first in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return True
        else:
            depth -= 1
    return False


def _has_unpaired_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def loads(text: str | bytes) -> Any:
    """Parse one JSON text strictly; raises only `WireError`."""
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WireError(f"invalid UTF-8 at byte {exc.start}") from None
    elif not isinstance(text, str):
        _fail(f"expected str or bytes, got {type(text).__name__}")
    elif not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            _fail("text contains an unpaired UTF-16 surrogate")
    if _too_deep(text):
        _fail(f"nesting deeper than {MAX_DEPTH} levels")
    try:
        value = json.loads(
            text,
            object_pairs_hook=_object_pairs,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
        )
    except json.JSONDecodeError as exc:
        raise WireError(f"invalid JSON: {exc}") from None
    except RecursionError:  # not reachable after _too_deep; kept so nothing but WireError escapes
        raise WireError(f"nesting deeper than {MAX_DEPTH} levels") from None
    if "\\u" in text and _SURROGATE_ESCAPE.search(text) and _has_unpaired_surrogate(value):
        _fail("string contains an unpaired UTF-16 surrogate")
    return value


# --------------------------------------------------------------------------------------------- dumps


def go_float(value: float) -> str:
    """Spell a float64 exactly as Go's `encoding/json` does (shortest round-trip digits).

    Go writes positional notation for 1e-6 <= |x| < 1e21 (so integral values carry no ".0") and
    exponent notation outside it, with a one-digit negative exponent kept short ("1e-7").
    """
    if not math.isfinite(value):
        _fail(f"{value!r} is not representable in JSON")
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    magnitude = abs(value)
    text = repr(value)
    if magnitude < 1e-6 or magnitude >= 1e21:
        # repr already chose exponent form here and pads exponents to two digits, like Go.
        mantissa, _, exponent = text.partition("e")
        if exponent.startswith("-0"):
            exponent = "-" + exponent[2:]
        return f"{mantissa}e{exponent}"
    if 1e-4 <= magnitude < 1e16:  # repr is positional in this range: only drop the ".0"
        return text[:-2] if text.endswith(".0") else text
    return format(Decimal(text).normalize(), "f")


def _encode_str(value: str, out: list[str]) -> None:
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            _fail("string contains an unpaired UTF-16 surrogate")
    out.append(encode_basestring(value))


def _encode(value: Any, out: list[str], depth: int) -> None:
    # Exact type checks first: this runs for every value of every outbound control frame.
    kind = type(value)
    if kind is str:
        _encode_str(value, out)
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif kind is int:
        if not -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
            _fail(f"integer {value} is outside the JSON safe range ±(2**53-1)")
        out.append(int.__repr__(value))
    elif kind is float:
        if value == 0 and math.copysign(1.0, value) < 0:
            _fail("-0 is not sent: JavaScript peers reject it")
        out.append(go_float(value))
    elif isinstance(value, dict):
        if depth >= MAX_DEPTH:
            _fail(f"nesting deeper than {MAX_DEPTH} levels")
        out.append("{")
        first = True
        for key, item in value.items():
            if not isinstance(key, str):
                _fail(f"object key {key!r} is not a string")
            if not first:
                out.append(",")
            first = False
            _encode_str(str(key), out)
            out.append(":")
            _encode(item, out, depth + 1)
        out.append("}")
    elif isinstance(value, list | tuple):
        if depth >= MAX_DEPTH:
            _fail(f"nesting deeper than {MAX_DEPTH} levels")
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode(item, out, depth + 1)
        out.append("]")
    elif isinstance(value, str):  # str subclasses such as StrEnum
        _encode_str(str(value), out)
    elif isinstance(value, int):  # int subclasses such as IntEnum (bool was handled above)
        _encode(int(value), out, depth)
    elif isinstance(value, float):
        _encode(float(value), out, depth)
    else:
        _fail(f"{type(value).__name__} is not JSON-serialisable")


def dumps(value: Any) -> str:
    """Compact JSON, dict insertion order kept, non-ASCII unescaped; raises only `WireError`."""
    out: list[str] = []
    _encode(value, out, 0)
    return "".join(out)


def canonical(value: Any) -> Any:
    """Deep copy of a free-form JSON value with every object's keys sorted, as Go marshals maps.

    Sorting by code point equals Go's byte-wise sort of the UTF-8 keys.
    """
    return _canonical(value, 0)


def _canonical(value: Any, depth: int) -> Any:
    if isinstance(value, dict):
        if depth >= MAX_DEPTH:
            _fail(f"nesting deeper than {MAX_DEPTH} levels")
        if not all(isinstance(key, str) for key in value):
            _fail("object keys must be strings")
        return {key: _canonical(value[key], depth + 1) for key in sorted(value)}
    if isinstance(value, list | tuple):
        if depth >= MAX_DEPTH:
            _fail(f"nesting deeper than {MAX_DEPTH} levels")
        return [_canonical(item, depth + 1) for item in value]
    return value
