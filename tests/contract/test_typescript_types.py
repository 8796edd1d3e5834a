"""TypeScript types generated from schemas/ (json-schema-to-typescript, pinned) and used by the Node agent.

The committed `examples/node-agent/contract.d.ts` must be exactly what the generator makes of schemas/
today, and the agent must type-check against it with `tsc --noEmit --strict`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from bridge.schemas import SCHEMA_DIR
from tests.contract.conftest import CONTRACT_TOOLS, REPO

NODE_AGENT = REPO / "examples" / "node-agent"
COMMITTED = NODE_AGENT / "contract.d.ts"


def test_committed_typescript_types_are_generated_from_the_schemas(node: str, tmp_path: Path) -> None:
    fresh = tmp_path / "contract.d.ts"
    subprocess.run(
        [node, str(CONTRACT_TOOLS / "gen-ts.mjs"), str(SCHEMA_DIR), str(fresh)], check=True, timeout=120
    )
    assert fresh.read_text(encoding="utf-8") == COMMITTED.read_text(encoding="utf-8"), (
        "examples/node-agent/contract.d.ts is stale: run `make contract-types`"
    )


def test_the_node_agent_type_checks_strictly_against_the_generated_types(node: str) -> None:
    tsc = NODE_AGENT / "node_modules" / "typescript" / "bin" / "tsc"
    assert tsc.is_file(), "examples/node-agent/node_modules missing: run `make node-agent`"
    done = subprocess.run(
        [node, str(tsc), "--noEmit", "--strict", "-p", str(NODE_AGENT / "tsconfig.json")],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
