"""Locate the upstream RTVBP vectors (read in place, never copied) and parametrize tests over them.

`RTVBP_VECTORS_DIR` points at the folder holding `conformance/` and `spec/`; by default the shared
checkout beside the repository (`<repo root>/../shared/rtvbp`). Every test case is generated from the
files found, so a new upstream vector file becomes a new test case without touching the tests.

Parametrized arguments a test may ask for:
- `golden_path`        every file under `babelforce.v1/golden/`
- `payload_case`       every valid/invalid sample of every `babelforce.v1/payloads/*.json`
- `frame_case`         every encode/decode/invalid case of `envelope/classic.v1/frames.json`
- `float_row`          every row of `authority/go-float64-boundaries.json`
- `manifest_schema`    every schema name of `spec/manifests/babelforce.v1.catalog.json`
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.vectors import catalog_dir, manifest_path, missing_reason


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class PayloadCase:
    """One sample of a generated payload vector file."""

    file: Path
    method: str
    direction: str  # "request" | "response"
    schema: str
    name: str
    json: str  # exact bytes, as text
    error: str | None  # None (valid) | "decode" | "validation"


@dataclass(frozen=True)
class FrameCase:
    section: str  # "encode" | "decode" | "invalid"
    name: str
    bytes: str
    frame: dict[str, Any] | None


def _golden_params() -> list[Any]:
    root = catalog_dir() / "golden"
    return [pytest.param(path, id=path.relative_to(root).as_posix()) for path in sorted(root.rglob("*.json"))]


def _payload_params() -> list[Any]:
    params = []
    for path in sorted((catalog_dir() / "payloads").glob("*.json")):
        doc = _load(path)
        for direction in ("request", "response"):
            section = doc[direction]
            samples = [(s, None) for s in section["valid"]] + [(s, s["error"]) for s in section["invalid"]]
            for sample, error in samples:
                case = PayloadCase(
                    file=path,
                    method=doc["method"],
                    direction=direction,
                    schema=section["schema"],
                    name=sample["name"],
                    json=sample["json"],
                    error=error,
                )
                verdict = error or "valid"
                params.append(pytest.param(case, id=f"{path.stem}:{direction}:{verdict}:{sample['name']}"))
    return params


def _frame_params() -> list[Any]:
    path = catalog_dir() / "envelope" / "classic.v1" / "frames.json"
    doc = _load(path)
    return [
        pytest.param(
            FrameCase(section=section, name=case["name"], bytes=case["bytes"], frame=case.get("frame")),
            id=f"{section}:{case['name']}",
        )
        for section in ("encode", "decode", "invalid")
        for case in doc[section]
    ]


def _float_params() -> list[Any]:
    path = catalog_dir() / "authority" / "go-float64-boundaries.json"
    return [pytest.param(row, id=row["name"]) for row in _load(path)]


def _schema_params() -> list[Any]:
    return [pytest.param(name, id=name) for name in _load(manifest_path())["schemas"]]


_GENERATORS = {
    "golden_path": _golden_params,
    "payload_case": _payload_params,
    "frame_case": _frame_params,
    "float_row": _float_params,
    "manifest_schema": _schema_params,
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    for argname, generate in _GENERATORS.items():
        if argname not in metafunc.fixturenames:
            continue
        reason = missing_reason()
        if reason is not None:
            metafunc.parametrize(argname, [pytest.param(None, marks=pytest.mark.skip(reason=reason))])
        else:
            metafunc.parametrize(argname, generate())


@pytest.fixture(scope="session")
def vectors_dir() -> Path:
    """The catalog's vector folder (`.../conformance/babelforce.v1`); skips when it is missing."""
    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)
    return catalog_dir()


@pytest.fixture(scope="session")
def manifest() -> dict[str, Any]:
    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)
    loaded: dict[str, Any] = _load(manifest_path())
    return loaded
