"""Contract tooling from scripts/contract (npm, pinned by its lockfile; `make contract-tools`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONTRACT_TOOLS = REPO / "scripts" / "contract"


@pytest.fixture(scope="session")
def node() -> str:
    found = shutil.which("node")
    if found is None:
        pytest.fail("node is not on PATH (Node.js >= 20 is needed for the contract tools)")
    if not (CONTRACT_TOOLS / "node_modules" / ".installed").is_file():
        pytest.fail("scripts/contract/node_modules missing: run `make contract-tools` (make test does it)")
    return found
