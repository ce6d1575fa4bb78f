"""The house rules of docs/architecture.md, checked on the source.

- nothing outside ``bayesmix/families/`` branches on a family's name;
- the families layer imports nothing of bayesmix above it at module level (config, data, em,
  graphs, inference, results, plotting, cli) and no PyMC/PyTensor at module level;
- the result variables are not listed outside the families (no hand-written tuple of them).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bayesmix"
FAMILY_BRANCH = re.compile(r"family ?(==|!=|in )")
ABOVE_FAMILIES = ("config", "data", "em", "graphs", "inference", "results", "plotting", "cli")


def _sources(folder: Path):
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def test_nothing_outside_the_families_branches_on_a_family_name():
    offenders = []
    for path in _sources(PACKAGE):
        if "families" in path.relative_to(PACKAGE).parts:
            continue
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if FAMILY_BRANCH.search(line):
                offenders.append(f"{path.relative_to(PACKAGE)}:{i}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def _module_level_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = []
    for node in tree.body:  # module level only: imports inside functions are lazy
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


@pytest.mark.parametrize("path", _sources(PACKAGE / "families"), ids=lambda p: p.name)
def test_the_families_layer_imports_nothing_above_it(path):
    for name in _module_level_imports(path):
        parts = name.split(".")
        assert parts[0] not in ("pymc", "pytensor", "arviz", "xarray"), f"{path.name}: {name}"
        if parts[0] == "bayesmix" and len(parts) > 1:
            assert parts[1] not in ABOVE_FAMILIES, f"{path.name} imports {name}"


def test_the_result_variables_are_listed_only_by_the_families():
    # the old hand-written lists, e.g. ("w", "mu", "sigma", "cov", "corr", "p")
    listing = re.compile(r"""\(\s*["']w["']\s*,\s*["']mu["']\s*,\s*["']sigma["']""")
    offenders = [
        str(p.relative_to(PACKAGE))
        for p in _sources(PACKAGE)
        if "families" not in p.relative_to(PACKAGE).parts
        and listing.search(p.read_text(encoding="utf-8"))
    ]
    assert not offenders, offenders


def test_the_rule_checks_can_fail(tmp_path):
    # the patterns catch what they are meant to catch
    assert FAMILY_BRANCH.search('if spec.family == "bernoulli":')
    assert FAMILY_BRANCH.search("if family in ('gaussian',):")
    bad = tmp_path / "m.py"
    bad.write_text("import pymc\nfrom bayesmix.em import x\n", encoding="utf-8")
    assert _module_level_imports(bad) == ["pymc", "bayesmix.em"]
