"""The course notebooks run top to bottom in fast mode, quietly, and are committed clean.

Each notebook is executed with nbclient in a kernel of this virtual environment, with
``BAYESMIX_FAST=1`` (the notebooks then shrink their sampler runs), in the folder
``notebooks/``. A run fails on any cell error and on any stderr output that mentions a warning.
"""

import json
import os
import re
import sys
from pathlib import Path

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
EXPECTED = {
    "old_faithful.ipynb",
    "handwritten_digits.ipynb",
    "heights_and_returns.ipynb",
    "beyond_gaussians.ipynb",
}
FAST_LINE = 'BAYESMIX_FAST = os.environ.get("BAYESMIX_FAST") == "1"'
CELL_TIMEOUT_S = 600  # one cell; the first NUTS cell compiles a model (minutes on a cold cache)
PREFIX_TAG = "KERNEL_PREFIX="


def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def test_expected_notebooks_exist():
    assert EXPECTED <= {p.name for p in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_clean(path):
    nb = _read(path)
    for cell in _code_cells(nb):
        assert cell.get("outputs") == [], f"{path.name}: a code cell has outputs; clear them"
        assert cell.get("execution_count") is None, f"{path.name}: clear execution counts"
    assert path.stat().st_size < 200_000


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_structure(path):
    nb = _read(path)
    cells = nb["cells"]
    assert cells[0]["cell_type"] == "markdown"  # opens with what it teaches
    assert FAST_LINE in _text(_code_cells(nb)[0]["source"])
    assert "## Exercises" in _text(cells[-1]["source"])  # ends with exercises
    assert nb["metadata"]["kernelspec"]["name"] == "python3"


# a call or attribute of a private name (obj._e_step(...), bm.x._helper): the course uses the
# public API only
PRIVATE_ACCESS = re.compile(r"[\w\])]\._[A-Za-z]\w*")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_uses_public_api_only(path):
    nb = _read(path)
    private = [
        f"cell {i}: {m.group(0)}"
        for i, cell in enumerate(nb["cells"])
        if cell["cell_type"] == "code"
        for m in PRIVATE_ACCESS.finditer(_text(cell["source"]))
    ]
    assert not private, f"{path.name} uses private names: {private}"


def _figures_shown_twice(cells) -> list[int]:
    """Cells that show a figure both as their value and as a pyplot display (the same image)."""
    twice = []
    for index, cell in enumerate(cells):
        kinds = {
            out["output_type"]
            for out in cell.get("outputs", [])
            if "image/png" in out.get("data", {})
        }
        if {"execute_result", "display_data"} <= kinds:
            twice.append(index)
    return twice


def test_figures_shown_twice_detects_the_pattern():
    png = {"data": {"image/png": "iVBOR"}}
    cells = [
        {"outputs": [{"output_type": "display_data", **png}]},
        {"outputs": [{"output_type": "execute_result", **png}]},
        {
            "outputs": [
                {"output_type": "execute_result", **png},
                {"output_type": "display_data", **png},
            ]
        },
    ]
    assert _figures_shown_twice(cells) == [2]


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_fast_mode(path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")

    # the kernelspec "python3" starts `python` from PATH: make that this environment's python
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
    monkeypatch.setenv("BAYESMIX_FAST", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # conftest's Agg; the kernel plots inline

    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(f"import sys\nprint('{PREFIX_TAG}' + sys.prefix)"))
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        allow_errors=False,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},  # cwd = notebooks/
    )
    client.execute()  # raises CellExecutionError on the first failing cell

    stderr, errors, prefix = [], [], None
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out["output_type"] == "error":
                errors.append(f"cell {index}: {out['ename']}: {out['evalue']}")
            elif out["output_type"] == "stream":
                text = _text(out["text"])
                if out["name"] == "stderr":
                    stderr.append(f"cell {index}: {text}")
                elif PREFIX_TAG in text:
                    prefix = text.split(PREFIX_TAG, 1)[1].strip()
    assert not errors, errors
    twice = _figures_shown_twice(nb.cells)
    assert not twice, (
        f"cells {twice} show their figure twice (returned and drawn by pyplot); close the "
        "pyplot figure (plt.close(fig)) or end the cell with ';'"
    )
    noisy = [s for s in stderr if "warning" in s.lower()]
    assert not noisy, "warnings on stderr:\n" + "\n".join(noisy)
    assert prefix is not None and Path(prefix).resolve() == Path(sys.prefix).resolve(), (
        f"the kernel ran {prefix}, not this environment ({sys.prefix})"
    )
