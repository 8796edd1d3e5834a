"""Where the upstream RTVBP vectors are: read in place, never copied.

`RTVBP_VECTORS_DIR` points at the folder holding `conformance/` and `spec/`; by default the shared
checkout beside the repository (`<repo root>/../shared/rtvbp`).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CATALOG = "babelforce.v1"


def vectors_root() -> Path:
    configured = os.environ.get("RTVBP_VECTORS_DIR")
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "rtvbp"


def catalog_dir() -> Path:
    return vectors_root() / "conformance" / CATALOG


def manifest_path() -> Path:
    return vectors_root() / "spec" / "manifests" / f"{CATALOG}.catalog.json"


def missing_reason() -> str | None:
    """None when the vectors are there, else the reason tests give when they skip."""
    if catalog_dir().is_dir() and manifest_path().is_file():
        return None
    return f"upstream RTVBP vectors not found at {vectors_root()}; set RTVBP_VECTORS_DIR"
