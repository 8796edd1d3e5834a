"""The generated TypeScript and Go types have exactly the contract's field names, types and optionality.

Every titled object schema in schemas/ (each event and its data, the counters, the audio chunk, each
command, the reply and every reply result) is compared field by field with the committed
`examples/node-agent/contract.d.ts` and `examples/go-agent/contract_types.go`. Freshness of those copies is
checked next to the agents' own tests; this checks that what the generators make of the schemas is right.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.schemas import SCHEMA_DIR

REPO = Path(__file__).resolve().parents[2]
TS_TYPES = REPO / "examples" / "node-agent" / "contract.d.ts"
GO_TYPES = REPO / "examples" / "go-agent" / "contract_types.go"
FILES = {path.name: json.loads(path.read_text(encoding="utf-8")) for path in SCHEMA_DIR.glob("*.schema.json")}
Field = tuple[str, bool]  # (kind, optional)


def _resolve(node: dict[str, Any], file: str) -> tuple[dict[str, Any], str]:
    while "$ref" in node or (
        len(node.get("allOf", [])) == 1 and set(node) <= {"allOf", "description", "title"}
    ):
        if "$ref" not in node:
            node = node["allOf"][0]
            continue
        target, _, pointer = node["$ref"].partition("#")
        file = target or file
        node = FILES[file]
        for part in filter(None, pointer.split("/")):
            node = node[part]
    return node, file


def _kind(node: dict[str, Any], file: str) -> str:
    node, file = _resolve(node, file)
    choices = [c for c in node.get("anyOf", []) if c.get("type") != "null"]
    if len(choices) == 1:
        return _kind(choices[0], file)
    if "const" in node or "enum" in node:
        values = [node["const"]] if "const" in node else node["enum"]
        return {str: "string", int: "integer", bool: "boolean"}[type(values[0])]
    types = node.get("type")
    if isinstance(types, list):
        types = next(t for t in types if t != "null")
    if types == "string":
        return "bytes" if node.get("contentEncoding") == "base64" else "string"
    return types or ("object" if "properties" in node else "any")


def _titled(node: Any, file: str) -> Iterator[tuple[str, dict[str, Any], str]]:
    if isinstance(node, dict):
        if node.get("title") and "properties" in node and node.get("type") == "object":
            yield node["title"], node, file
        for value in node.values():
            yield from _titled(value, file)
    elif isinstance(node, list):
        for value in node:
            yield from _titled(value, file)


def _expected() -> dict[str, dict[str, Field]]:
    found: dict[str, dict[str, Field]] = {}
    for file, schema in sorted(FILES.items()):
        for title, node, where in _titled(schema, file):
            props = dict(node["properties"])
            for branch in node.get("oneOf", []):  # the reply: `result` or `error`
                props.update({k: v for k, v in branch.get("properties", {}).items() if k not in props})
            required = set(node.get("required", []))
            found[title] = {key: (_kind(spec, where), key not in required) for key, spec in props.items()}
    return found


EXPECTED = _expected()
MUST_HAVE = {
    "SessionStartedEvent",
    "SessionStartedData",
    "DtmfEvent",
    "DtmfData",
    "SessionEndedEvent",
    "SessionEndedData",
    "SessionCounters",
    "AudioGapData",
    "AudioChunk",
    "NegotiatedAudioCodec",
    "Reply",
    *(f"{t}Command" for t in ("Audio", "Mark", "Clear", "Request", "Event")),
    *(name for name in FILES["results.schema.json"]["$defs"] if name != "SessionGetResult"),
}


def test_the_comparison_covers_every_named_body_and_result() -> None:
    assert set(EXPECTED) >= MUST_HAVE
    assert EXPECTED["DtmfData"]["digit"] == ("string", False)
    assert EXPECTED["AudioChunk"]["audio"] == ("bytes", False)
    assert EXPECTED["ApplicationMoveResult"]["next_application_id"] == ("string", True)


# ---------------------------------------------------------------- TypeScript


def _ts_declarations(text: str) -> dict[str, str]:
    """Exported interface/type name -> its body text (brace-balanced)."""
    out: dict[str, str] = {}
    for match in re.finditer(r"^export (?:interface (\w+) |type (\w+) = )", text, re.M):
        name = match.group(1) or match.group(2)
        start = text.index("{", match.end() - 1) if match.group(1) else match.end()
        depth, i = 0, start
        while i < len(text):
            if text[i] in "{(":
                depth += 1
            elif text[i] in "})":
                depth -= 1
                if depth == 0 and match.group(1):
                    break  # an interface ends with its brace
            elif text[i] == ";" and depth == 0:
                break  # a type alias (`{...} & {...};`) ends with its semicolon
            i += 1
        out[name] = text[start : i + 1]
    return out


def _ts_fields(body: str) -> dict[str, tuple[str, bool]]:
    fields: dict[str, tuple[str, bool]] = {}
    depth = 0
    for line in body.splitlines():
        stripped = re.sub(r"/\*.*?\*/|^\s*\*.*$|^\s*/\*\*.*$", "", line)
        if depth == 1 and (m := re.match(r"\s*(\w+)(\?)?:\s*(.*?);?$", stripped)):
            fields[m.group(1)] = (m.group(3).strip(), bool(m.group(2)))
        depth += stripped.count("{") - stripped.count("}")
    return fields


def _ts_kind(ts: str) -> str:
    ts = ts.removesuffix(" | null")  # nullable: the same kind (JSON Schema `type: [X, "null"]`)
    if ts in ("string",) or re.fullmatch(r'"[^"]*"(\s*\|\s*"[^"]*")*|\|?\s*', ts):
        return "string"
    if ts in ("number", "boolean", "true", "false") or re.fullmatch(r"-?\d+", ts):
        return {"true": "boolean", "false": "boolean"}.get(ts, "number" if ts != "boolean" else "boolean")
    if ts == "Uint8Array":
        return "bytes"
    if ts.endswith("[]") or ts.startswith("["):  # `X[]`, or a tuple `[X, ...X[]]` for minItems
        return "array"
    if ts == "unknown":
        return "any"
    return "object"  # a named interface or an inline map


TS = _ts_declarations(TS_TYPES.read_text(encoding="utf-8"))


@pytest.mark.parametrize("title", sorted(EXPECTED))
def test_typescript_type_has_the_contract_fields(title: str) -> None:
    assert title in TS, f"no TypeScript type {title}"
    seen = _ts_fields(TS[title])
    for union in re.findall(r"& \(([\w\s|]+)\)", TS[title]):  # `{...} & (ReplyOk | ReplyFailed)`
        for member in union.split("|"):
            for key, (ts, _) in _ts_fields(TS[member.strip()]).items():
                seen.setdefault(key, (ts, True))  # present in one branch only: optional overall
    expected = {
        k: ("number" if kind == "integer" else kind, opt) for k, (kind, opt) in EXPECTED[title].items()
    }
    # a multi-line union (e.g. `event:` with its names on the next lines) reads as a string union
    got = {k: (_ts_kind(t) if t else "string", opt) for k, (t, opt) in seen.items()}
    assert got == expected


# ---------------------------------------------------------------- Go

GO_KINDS = {"string": "string", "int64": "integer", "float64": "number", "bool": "boolean", "[]byte": "bytes"}


def _go_structs(text: str) -> dict[str, dict[str, tuple[str, bool]]]:
    structs: dict[str, dict[str, tuple[str, bool]]] = {}
    for match in re.finditer(r"^type (\w+) struct \{\n(.*?)^\}", text, re.M | re.S):
        fields = {}
        for line in match.group(2).splitlines():
            if m := re.match(r'\s*\w+\s+(\S+)\s+`msgpack:"(\w+)(,omitempty)?"`', line):
                go_type, key, omitempty = m.groups()
                fields[key] = (go_type, bool(omitempty))
        structs[match.group(1)] = fields
    return structs


def _go_kind(go_type: str, optional: bool) -> str:
    base = go_type.removeprefix("*")
    if base in GO_KINDS:
        return GO_KINDS[base]
    if base.startswith("[]"):
        return "array"
    if base == "interface{}":
        return "any"
    return "object"  # a generated struct, a map or the reply's raw result


GO = _go_structs(GO_TYPES.read_text(encoding="utf-8"))


@pytest.mark.parametrize("title", sorted(EXPECTED))
def test_go_struct_has_the_contract_fields_with_msgpack_tags(title: str) -> None:
    assert title in GO, f"no Go struct {title}"
    got = {key: (_go_kind(go_type, opt), opt) for key, (go_type, opt) in GO[title].items()}
    assert got == EXPECTED[title]
    for key, (go_type, optional) in GO[title].items():
        scalar = go_type.removeprefix("*") in GO_KINDS and go_type != "[]byte"
        if scalar:  # optional scalars are pointers, so "absent" is not confused with zero
            assert go_type.startswith("*") == optional, (key, go_type)
