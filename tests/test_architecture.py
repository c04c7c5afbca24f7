"""The package layout as a contract (README, "Architecture"): layers import downwards only,
no module imports a module that imports it back, and functions and modules stay small.

Imports are read with ``ast`` (including those inside functions), so the test sees what a
grep would miss and needs no extra dependency.
"""

from __future__ import annotations

import ast
import statistics
from pathlib import Path

import pytest

BOT = Path(__file__).resolve().parent.parent / "bot"
# Lower number = lower layer. A module may import its own layer and the ones below.
LAYERS = {"models": 0, "errors": 0, "config": 0,
          "mail": 1, "triage": 1, "rules": 1,
          "adapters": 2, "flows": 3, "ops": 4, "__main__": 5}
PURE = {"mail", "triage", "rules"}
MAX_TOP_LEVEL_MODULES = 6
MAX_FUNCTION_LINES = 60
MAX_MEDIAN_FUNCTION_LINES = 10
MAX_MODULE_LINES = 500


def module_name(path: Path) -> str:
    parts = path.relative_to(BOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(BOT.rglob("*.py"))}


def imports_of(name: str) -> set[str]:
    """Modules of the bot package that ``name`` imports (anywhere in the file)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return {m for m in found if m in MODULES and m != name and m != "bot"}


GRAPH = {name: imports_of(name) for name in MODULES}


def layer(name: str) -> tuple[str, int]:
    top = name.split(".")[1] if "." in name else "__init__"
    return top, LAYERS.get(top, 0)


@pytest.mark.parametrize("name", sorted(n for n in MODULES if "." in n))
def test_imports_point_down(name: str) -> None:
    top, rank = layer(name)
    upward = sorted(dep for dep in GRAPH[name] if layer(dep)[1] > rank)
    assert not upward, f"{name} ({top}) imports a higher layer: {upward}"
    if top in PURE:
        impure = sorted(d for d in GRAPH[name] if layer(d)[0] in {"adapters", "flows", "ops"})
        assert not impure, f"pure {name} imports I/O layers: {impure}"


def test_no_import_cycles() -> None:
    cycles = [component for component in strongly_connected(GRAPH) if len(component) > 1]
    assert cycles == []


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative enough for a few dozen modules)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    result: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for dep in graph[node]:
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            result.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return result


def test_the_cycle_detector_finds_a_cycle() -> None:
    assert strongly_connected({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"], ["c"]]


def test_few_modules_stay_at_the_top() -> None:
    top = [p.name for p in BOT.glob("*.py") if p.name not in {"__init__.py", "__main__.py"}]
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


def function_lengths() -> dict[str, int]:
    lengths = {}
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lengths[f"{name}.{node.name}:{node.lineno}"] = node.end_lineno - node.lineno + 1
    return lengths


def test_functions_are_short() -> None:
    lengths = function_lengths()
    too_long = {k: v for k, v in lengths.items() if v > MAX_FUNCTION_LINES}
    assert too_long == {}
    assert statistics.median(lengths.values()) <= MAX_MEDIAN_FUNCTION_LINES


def test_modules_are_short() -> None:
    sizes = {n: len(p.read_text(encoding="utf-8").splitlines()) for n, p in MODULES.items()}
    assert {n: s for n, s in sizes.items() if s > MAX_MODULE_LINES} == {}
