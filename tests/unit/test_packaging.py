"""The package works installed from a wheel, away from the repository: the AMQP contract (schemas/) and
the demo's echo agent (examples/) travel inside it (setup.py), and bridge/resources.py finds them."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from bridge import resources

REPO = Path(__file__).resolve().parents[2]

INSTALLED_CHECK = """
import json, pathlib, sys
import bridge, bridge.demo, bridge.schemas as schemas
from bridge.resources import CONTRACT_DIR, EXAMPLES_DIR
site = pathlib.Path(sys.argv[1])
assert pathlib.Path(bridge.__file__).is_relative_to(site), bridge.__file__
assert CONTRACT_DIR == site / "bridge" / "contract" and EXAMPLES_DIR == site / "bridge" / "examples"
schemas.validate_body({"type": "mark", "name": "m1"}, kind="command")
try:
    schemas.validate_body({"type": "mark"}, kind="command")
except Exception as exc:
    assert type(exc).__name__ == "ValidationError", exc
else:
    raise AssertionError("an invalid body validated")
assert (EXAMPLES_DIR / "echo_agent.py").is_file() and (CONTRACT_DIR / "asyncapi.yaml").is_file()
print("installed ok")
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Built from a copy holding only what the Dockerfile copies: that set must be enough, and pip's
    # in-tree build leaves nothing behind in the checkout (a stale build/ would leak into wheels).
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for folder in ("bridge", "schemas"):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (source / "examples").mkdir()
    for example in (REPO / "examples").glob("*.py"):
        shutil.copy2(example, source / "examples" / example.name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    [built] = out.glob("rtvbp_bridge-*.whl")
    return built


def test_a_checkout_reads_the_contract_and_examples_in_place() -> None:
    assert resources.CONTRACT_DIR == REPO / "schemas"
    assert resources.EXAMPLES_DIR == REPO / "examples"


def test_the_wheel_carries_every_module_schema_and_example_agent(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "bridge").rglob("*.py")}
    assert modules <= names, sorted(modules - names)
    schemas = {f"bridge/contract/{p.name}" for p in (REPO / "schemas").glob("*.schema.json")}
    assert schemas and schemas <= names, sorted(schemas - names)
    assert {"bridge/contract/asyncapi.yaml", "bridge/examples/echo_agent.py"} <= names


def test_the_installed_package_validates_bodies_and_finds_the_echo_agent(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    # An installed layout, first on the path and run from elsewhere: nothing may come from the checkout.
    done = subprocess.run(
        [sys.executable, "-c", INSTALLED_CHECK, str(site)],
        cwd=tmp_path,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and "installed ok" in done.stdout, done.stderr
