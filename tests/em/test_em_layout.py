"""The layout of bayesmix/em/: no import loops between its modules, NumPy only.

Every ``import`` counts, also those inside functions (a lazy import hides a loop from Python,
not from a reader). The package's ``__init__`` only re-exports and is left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import bayesmix.em

EM = Path(bayesmix.em.__file__).resolve().parent


def _imports(path: Path) -> set[str]:
    """The bayesmix.em submodules that a module imports (any scope)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("bayesmix.em."):
                out.add(node.module.split(".")[2])
            elif node.module == "bayesmix.em":  # from bayesmix.em import _xp, gaussian
                out.update(a.name for a in node.names if (EM / f"{a.name}.py").exists())
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("bayesmix.em."):
                    out.add(alias.name.split(".")[2])
    return out


def _graph() -> dict[str, set[str]]:
    return {p.stem: _imports(p) - {p.stem} for p in EM.glob("*.py") if p.stem != "__init__"}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_cycle_finder_finds_a_loop():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_loops_in_em():
    graph = _graph()
    assert {"_base", "kmeans", "gaussian", "_gaussian_kernels", "_dask", "_xp"} <= set(graph)
    assert _cycles(graph) == []


def test_em_never_imports_pymc_or_arviz():
    bad = []
    for path in EM.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            bad += [f"{path.name}: {n}" for n in names if n.split(".")[0] in ("pymc", "arviz")]
    assert bad == []
