"""Golden fixtures: the frozen byte authority. Decode through our types, re-encode byte-identically.

File names carry the type: `payloads/<method>.<request|response>.json`, `events/<event>.json`,
`variants/{payloads,events}/<name>-<variant>.json`, and whole frames under `envelope/classic.v1/`.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import pytest

from bridge.protocol import catalog, wire
from bridge.protocol.envelope import ABSENT, Event, Request, decode_frame, encode_frame


def _payload_type(path: Path) -> type[catalog.Payload]:
    """The catalog type a golden payload/event file holds, from its folder and name."""
    name = path.name.removesuffix(".json").split("-", 1)[0]  # catalog names contain no "-"
    if path.parent.name == "events":
        return catalog.EVENTS[name].data
    if path.parent.name == "payloads":
        method, direction = name.rsplit(".", 1)
        spec = catalog.OPERATIONS[method]
        return {"request": spec.request, "response": spec.response}[direction]
    raise AssertionError(f"golden file in an unknown layout: {path}")


def test_golden_round_trip(golden_path: Path) -> None:
    raw = golden_path.read_bytes()
    if golden_path.parent.parent.name == "envelope":
        frame = decode_frame(raw)
        assert encode_frame(frame).encode() == raw
        # The payload inside the frame also survives our typed catalog unchanged.
        if isinstance(frame, Request) and frame.params is not ABSENT:
            params = catalog.decode_params(frame.method, frame.params).to_wire()
            typed = Request(id=frame.id, method=frame.method, params=params)
            assert encode_frame(typed).encode() == raw
        if isinstance(frame, Event) and frame.data is not ABSENT:
            data = catalog.decode_event_data(frame.event, frame.data).to_wire()
            assert encode_frame(Event(id=frame.id, event=frame.event, data=data)).encode() == raw
        return
    payload_type = _payload_type(golden_path)
    value = payload_type.from_wire(wire.loads(raw))
    assert type(value) is payload_type
    assert wire.dumps(value.to_wire()).encode("utf-8") == raw


def test_every_operation_and_event_has_golden_bytes(vectors_dir: Path) -> None:
    golden = vectors_dir / "golden"
    for method in catalog.OPERATIONS:
        for direction in ("request", "response"):
            assert (golden / "payloads" / f"{method}.{direction}.json").is_file(), (method, direction)
    for event in catalog.EVENTS:
        assert (golden / "events" / f"{event}.json").is_file(), event


def _float_of(row: dict[str, Any]) -> float:
    value: float = struct.unpack(">d", bytes.fromhex(row["bits"]))[0]
    return value


def test_go_float_spelling(float_row: dict[str, Any]) -> None:
    value = _float_of(float_row)
    if float_row.get("rejects"):
        with pytest.raises(wire.WireError):
            wire.go_float(value)
        return
    assert wire.go_float(value) == float_row["json"]
    assert float(json.loads(float_row["json"])) == value  # and it parses back to the same value


def test_dumps_float_authority(float_row: dict[str, Any]) -> None:
    value = _float_of(float_row)
    is_negative_zero = value == 0 and math.copysign(1.0, value) < 0
    if float_row.get("rejects") or is_negative_zero:
        # -0 is Go-spellable but JavaScript peers drop frames carrying it: never sent.
        with pytest.raises(wire.WireError):
            wire.dumps(value)
        return
    assert wire.dumps(value) == float_row["json"]
    assert wire.dumps({"bytes_per_second": value}) == f'{{"bytes_per_second":{float_row["json"]}}}'
