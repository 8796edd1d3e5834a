"""The layers of ARCHITECTURE.md, enforced: who may import whom in bridge/, and no import cycles.

Read from the source with `ast` (no import side effects); a module-level or function-level import counts
the same, because either ties one layer to the other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "bridge"

# What each layer may import from bridge/ (besides itself). Anything not listed is forbidden.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "protocol": {"errors"},
    "audio": {"errors", "protocol"},
    "port": {"errors", "protocol", "audio"},
    "compat": set(),
    "server": {"errors", "protocol", "audio", "port", "compat", "auth", "config", "telemetry", "logs"},
    "broker": {"errors", "protocol", "audio", "port", "compat", "config", "telemetry", "logs"},
    "join": {"errors", "protocol", "port", "broker", "auth", "config", "telemetry"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def bridge_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("bridge"))
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            base = node.module or ""
            if not base.startswith("bridge"):
                continue
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    return {name for name in found if name in modules}


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "bridge"


GRAPH = {module_name(p): bridge_imports(p) for p in PACKAGE.rglob("*.py")}


@pytest.mark.parametrize("source_layer", sorted(ALLOWED))
def test_layer_imports_only_what_it_may(source_layer: str) -> None:
    wrong = sorted(
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        if layer(module) == source_layer
        for target in targets
        if layer(target) not in ALLOWED[source_layer] | {source_layer, "bridge"}
    )
    assert wrong == [], f"{source_layer} reaches past its layer: {wrong}"


def test_the_two_adapters_never_import_each_other() -> None:
    crossing = sorted(
        f"{m} -> {t}"
        for m, targets in GRAPH.items()
        for t in targets
        if {layer(m), layer(t)} == {"server", "broker"}
    )
    assert crossing == []


def test_no_import_cycles() -> None:
    # Tarjan's strongly connected components over module -> module edges (packages' __init__ excluded).
    graph = {m: {t for t in ts if t in GRAPH and t != m} for m, ts in GRAPH.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert cycles == []


def test_the_checker_sees_imports() -> None:
    """The rules above would pass vacuously if the parser found no imports: prove it finds them."""
    assert "bridge.port" in GRAPH["bridge.broker.link"]
    assert any(layer(t) == "broker" for t in GRAPH["bridge.join"])
