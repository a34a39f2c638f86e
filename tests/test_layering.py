"""The layering stays as DESIGN.md draws it: no import cycles between any two modules of ours (lazy
imports inside functions included), no module reaching for another's private name, and the
contracts, high levels and trainers kept to readable sizes. ``lint-imports`` (run by ``make test``)
checks the direction of every import against the contracts in pyproject.toml."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("hrl_runtime", "planners", "skill_library", "envs", "kernels")
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80


def project_files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module (iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def test_the_cycle_finder_finds_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert strongly_connected(graph) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


@pytest.fixture(scope="module")
def import_graph() -> dict[str, set[str]]:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    modules = sorted(graph.modules)
    return {m: set(graph.find_modules_directly_imported_by(m)) & set(modules) for m in modules}


def test_no_import_cycles_between_modules(import_graph):
    # A package's __init__ re-exporting its own modules is not a cycle between modules.
    edges = {
        module: {i for i in imported if not module.startswith(i + ".")}
        for module, imported in import_graph.items()
    }
    assert strongly_connected(edges) == []


def test_the_contracts_import_no_application(import_graph):
    applications = ("cli", "serving", "experiments", "taskfiles")
    for module, imported in import_graph.items():
        if not module.startswith("hrl_runtime") or module.split(".")[1:2] in [
            [a] for a in applications
        ]:
            continue
        for target in imported:
            assert target.split(".")[0] in ("hrl_runtime", "kernels"), (module, target)
            assert not any(target.startswith(f"hrl_runtime.{a}") for a in applications)


def private_imports(path: Path) -> list[str]:
    """``from our.module import _name`` in one file, and imports of a private module
    (``pkg._mod``) from outside its parent package ``pkg``."""
    found = []
    package = ".".join(path.relative_to(ROOT).parent.parts)
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] not in PACKAGES:
                continue
            found += [f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
            parts = node.module.split(".")
            for depth, part in enumerate(parts):
                parent = ".".join(parts[:depth])
                inside = package == parent or package.startswith(parent + ".")
                if part.startswith("_") and not part.startswith("__") and not inside:
                    found.append(node.module)
    return found


def test_no_module_imports_a_private_name_of_another():
    offenders = {
        str(path.relative_to(ROOT)): names
        for path in project_files(*PACKAGES, "tests")
        if (names := private_imports(path))
    }
    assert offenders == {}


def long_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    return [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]


def sized_files() -> list[Path]:
    trainers = [*ROOT.glob("skill_library/*/train.py"), *ROOT.glob("skill_library/*/downstream.py")]
    return [*project_files("hrl_runtime", "planners"), *sorted(trainers)]


def test_modules_and_functions_stay_readable():
    too_long = {
        str(p.relative_to(ROOT)): n
        for p in sized_files()
        if (n := p.read_text().count("\n")) > MAX_MODULE_LINES
    }
    assert too_long == {}
    functions = {str(p.relative_to(ROOT)): f for p in sized_files() if (f := long_functions(p))}
    assert functions == {}
