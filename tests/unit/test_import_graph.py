"""Imports point one way: no circle in include/ or scripts/, and the config model imports no implementation.

The graph is read from the source (ast), so it holds every import: at module level, deferred inside a
function, and under ``TYPE_CHECKING``. A deferred or type-only import that closes a circle still ties the
modules together (one cannot be read, tested or moved without the other); hiding it from the
interpreter does not undo that.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# What the typed config model is built from; anything else it reached (the load's strategies, the
# ledger's SQL, schema evolution's rules) would make importing the model import the pipeline.
CONFIG_MAY_REACH = {
    "report_pipeline",
    "report_pipeline.config",
    "report_pipeline.errors",
    "report_pipeline.legacy",
    "report_pipeline.notifiers",
    "report_pipeline.rowvalues",
    "report_pipeline.setting_values",
    "report_pipeline.settings",
    "report_pipeline.tablespec",
    "report_pipeline.taskids",
    "report_pipeline.vocabulary",
}
CONFIG_MAY_REACH_PACKAGES = ("report_pipeline.validation",)


def _dotted(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    """Every module of include/ by dotted name, and every module of scripts/ by its dotted name from there
    (how the scripts import each other: ``python scripts/x.py`` puts scripts/ first on sys.path): the
    scripts and the packages beside them (``benchkit``), not the folders that are no package
    (scripts/pythonpath, scripts/compose)."""
    found: dict[str, Path] = {}
    for path in (ROOT / "include").rglob("*.py"):
        found[_dotted(ROOT / "include", path)] = path
    scripts = ROOT / "scripts"
    for path in scripts.glob("*.py"):
        found[_dotted(scripts, path)] = path
    for init in scripts.glob("*/__init__.py"):
        for path in init.parent.rglob("*.py"):
            found[_dotted(scripts, path)] = path
    return found


def _imported_names(name: str, path: Path) -> Iterator[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            yield module
            # ``from package import module`` imports the module.
            yield from (f"{module}.{alias.name}" for alias in node.names)


@cache
def graph() -> dict[str, frozenset[str]]:
    """Module -> the known modules it imports (an imported name resolves to the longest known module)."""
    known = modules()
    edges: dict[str, frozenset[str]] = {}
    for name, path in known.items():
        targets = set()
        for imported in _imported_names(name, path):
            parts = imported.split(".")
            while parts and ".".join(parts) not in known:
                parts.pop()
            if parts and ".".join(parts) != name:
                targets.add(".".join(parts))
        edges[name] = frozenset(targets)
    return edges


def cycles(edges: dict[str, frozenset[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def reachable(edges: dict[str, frozenset[str]], start: str) -> set[str]:
    """Every module ``start`` imports, directly or through others."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _circle_text(component: list[str], edges: dict[str, frozenset[str]]) -> str:
    inside = set(component)
    return "; ".join(f"{m} -> {', '.join(sorted(edges[m] & inside))}" for m in component)


def test_the_graph_sees_every_kind_of_import(tmp_path: Path):
    known = set(graph())
    assert {"report_pipeline.config", "report_pipeline.airflow.factory", "bench", "benchkit.incremental"} <= known
    # A package's module imported by dotted name from a script is an edge to it.
    assert "benchkit.session" in graph()["bench"]
    # A deferred import inside a function and a TYPE_CHECKING one are edges too.
    edges = {"a": frozenset({"b"}), "b": frozenset({"a"}), "c": frozenset()}
    assert cycles(edges) == [["a", "b"]]
    code = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from x.y import Z\ndef f():\n    import x.w\n"
    probe = tmp_path / "probe.py"
    probe.write_text(code)
    assert set(_imported_names("x.probe", probe)) >= {"x.y", "x.y.Z", "x.w"}


def test_no_import_circle_in_include_or_scripts():
    edges = graph()
    found = cycles(edges)
    assert not found, "import circles (module -> the members it imports):\n" + "\n".join(
        _circle_text(c, edges) for c in found
    )


def test_the_config_model_imports_no_implementation_module():
    reached = reachable(graph(), "report_pipeline.config")
    extra = sorted(m for m in reached if m not in CONFIG_MAY_REACH and not m.startswith(CONFIG_MAY_REACH_PACKAGES))
    assert not extra, f"report_pipeline.config reaches implementation modules: {extra}"


def test_the_shared_vocabulary_imports_only_the_exceptions():
    assert graph()["report_pipeline.vocabulary"] <= {"report_pipeline.errors"}
