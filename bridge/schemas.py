"""Validate AMQP message bodies against the published JSON Schemas in `schemas/`.

Used by tests and tools, never on the hot path: `jsonschema` is a dev dependency, so it is imported
inside the functions that need it and `bridge` stays importable without it.
"""

from __future__ import annotations

import base64
import functools
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from bridge.resources import CONTRACT_DIR

if TYPE_CHECKING:
    from referencing import Registry

BodyKind = Literal["event", "audio", "command", "reply"]

SCHEMA_DIR: Path = CONTRACT_DIR

_SUFFIX = ".schema.json"
_TYPE_NAME = re.compile(r"[a-z][a-z0-9_.-]*")  # also keeps a hostile `type` from naming a path


def schema_name_for(body: Mapping[str, Any], *, kind: BodyKind) -> str:
    """The schema file stem (e.g. `event.dtmf`) describing `body`; ValueError if the contract has none."""
    if kind == "audio":
        return "audio-chunk"
    if kind == "reply":
        return "reply"
    body_type = body.get("type")
    if not isinstance(body_type, str) or not _TYPE_NAME.fullmatch(body_type):
        raise ValueError(f"{kind} body has no valid 'type': {body_type!r}")
    name = f"{kind}.{body_type}"
    if not (SCHEMA_DIR / f"{name}{_SUFFIX}").is_file():
        raise ValueError(f"no schema for {kind} type {body_type!r}")
    return name


_RESULTS = "results"


def result_schema_for(command: Mapping[str, Any]) -> str:
    """The `$defs` name in results.schema.json of the reply result to `command` (e.g. `PingResult`)."""
    command_type = command.get("type")
    if command_type == "request":
        method = command.get("method")
        if not isinstance(method, str) or not _TYPE_NAME.fullmatch(method):
            raise ValueError(f"request has no valid 'method': {method!r}")
        name = "".join(part[:1].upper() + part[1:] for part in method.split(".")) + "Result"
    elif isinstance(command_type, str) and _TYPE_NAME.fullmatch(command_type):
        name = command_type[:1].upper() + command_type[1:] + "Result"
    else:
        raise ValueError(f"command has no valid 'type': {command_type!r}")
    if name not in _load(SCHEMA_DIR / f"{_RESULTS}{_SUFFIX}")["$defs"]:
        raise ValueError(f"no result schema for {command_type} {command.get('method', '')}".rstrip())
    return name


def validate_reply(body: Mapping[str, Any], command: Mapping[str, Any]) -> None:
    """Validate a reply body and, when it is `ok`, its `result` against the schema of `command`'s result."""
    from jsonschema import ValidationError

    validate_body(body, kind="reply")
    if body.get("ok") is not True:
        return
    try:
        name = result_schema_for(command)
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc
    _validator(f"{_RESULTS}#/$defs/{name}").validate(jsonable(body["result"]))


def validate_headers(headers: Mapping[str, Any] | None) -> None:
    """Raise `jsonschema.ValidationError` unless AMQP `headers` are those the bridge publishes with."""
    _validator("defs#/$defs/BridgeHeaders").validate(jsonable(dict(headers or {})))


def jsonable(value: Any) -> Any:
    """`value` as JSON Schema sees it: bytes become base64 text, tuples become lists, recursively."""
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Mapping):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return value


def validate_body(body: Mapping[str, Any], *, kind: BodyKind) -> None:
    """Raise `jsonschema.ValidationError` unless `body` (as decoded from msgpack) matches its schema."""
    from jsonschema import ValidationError

    try:
        name = schema_name_for(body, kind=kind)
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc
    _validator(name).validate(jsonable(body))


def _load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


@functools.cache
def _registry() -> Registry[Any]:
    """Every schema file under its `$id`, so cross-file `$ref`s resolve offline."""
    from referencing import Registry, Resource

    resources = [
        (contents["$id"], Resource.from_contents(contents))
        for contents in map(_load, sorted(SCHEMA_DIR.glob(f"*{_SUFFIX}")))
    ]
    registry: Registry[Any] = Registry().with_resources(resources)
    return registry


@functools.cache
def _validator(name: str) -> Any:
    """`name` is a file stem, or `stem#/$defs/Name` for a named schema inside a file."""
    from jsonschema import Draft202012Validator

    stem, _, pointer = name.partition("#")
    schema = _load(SCHEMA_DIR / f"{stem}{_SUFFIX}")
    if pointer:
        schema = {"$ref": f"{schema['$id']}#{pointer}"}
    return Draft202012Validator(schema, registry=_registry())
