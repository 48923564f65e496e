"""The package runs downhill: no module imports one above its layer, and nothing is circular."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

#: lowest first; a module may import its own group and the groups of lower layers only
LAYERS: list[set[str]] = [
    {"phyll.errors", "phyll.atomic"},
    {
        "phyll.params",
        "phyll.flops",
        "phyll.usercode",
        "phyll.machine",
        "phyll.memory",
        "phyll.files",
    },
    {"phyll.accounting", "phyll.plotting", "phyll.plugins"},
    {"phyll.systems", "phyll.data"},
    {"phyll.remote", "phyll.network", "phyll.twin"},
    {"phyll.learning"},
    {"phyll.registry", "phyll.engine"},
    {"phyll.experiments"},
    {"phyll.report"},
    {"phyll.cli"},
    {"phyll"},
]


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def group_of(module: str) -> tuple[str, int]:
    """The layer group a module belongs to (its longest listed prefix) and the layer index."""
    best = None
    for layer, groups in enumerate(LAYERS):
        for group in groups:
            if (module == group or module.startswith(group + ".")) and (
                best is None or len(group) > len(best[0])
            ):
                best = (group, layer)
    assert best is not None, f"{module} is in no layer of tests/test_architecture.py"
    return best


def phyll_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] == "phyll":
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "phyll")
    return found


MODULES = {module_name(p): p for p in sorted((SRC / "phyll").rglob("*.py"))}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_run_downhill(module):
    group, layer = group_of(module)
    for target in phyll_imports(MODULES[module]):
        target_group, target_layer = group_of(target)
        assert target_layer < layer or target_group == group, (
            f"{module} (layer {layer}, {group}) imports {target} (layer {target_layer}): "
            "an edge uphill or sideways"
        )


def test_no_import_cycles():
    graph = {
        m: {t for t in phyll_imports(p) if t in MODULES and t != m} for m, p in MODULES.items()
    }
    done: set[str] = set()

    def visit(module: str, stack: list[str]) -> None:
        assert module not in stack, "import cycle: " + " → ".join([*stack, module])
        if module in done:
            return
        for target in graph[module]:
            visit(target, [*stack, module])
        done.add(module)

    for module in graph:
        visit(module, [])


def test_no_deferred_imports_inside_functions():
    """Imports sit at the top of each module (a deferred import hides a cycle)."""
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                inner = [
                    n
                    for n in ast.walk(node)
                    if isinstance(n, ast.Import | ast.ImportFrom)
                    and any(
                        name.split(".")[0] == "phyll"
                        for name in (
                            [n.module or ""] if isinstance(n, ast.ImportFrom) else
                            [a.name for a in n.names]
                        )
                    )
                ]  # fmt: skip
                assert not inner, f"{module}.{node.name} imports phyll inside a function"
