"""Shared helpers of the CLI tests: run ``bayesmix`` in-process, and session-scoped fits.

The CLI runs in this process (``bayesmix.cli.main``), so a model compiled by one test is reused
by the next. The two session fits are the main job (the default spec, Old Faithful in 2-D,
with few NUTS draws) and an EM-only fit of the same data (no PyMC compile).
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

from bayesmix.cli import main  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "models"
FAST = ["--draws", "100", "--tune", "100", "--chains", "2", "--quiet"]


def run_cli(argv, cwd: Path | None = None) -> tuple[int, str, str]:
    """Run ``bayesmix *argv`` in-process -> (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    old = Path.cwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in argv])
    finally:
        os.chdir(old)
    return code, out.getvalue(), err.getvalue()


def error_lines(stderr: str) -> list[str]:
    """The lines of stderr that are not progress lines (``bayesmix: [  1.2 s] ...``)."""
    return [ln for ln in stderr.strip().splitlines() if not ln.startswith("bayesmix: [")]


@pytest.fixture(scope="session")
def em_run(tmp_path_factory) -> Path:
    """``bayesmix fit --methods em`` on the default data (fast: NumPy EM only)."""
    out = tmp_path_factory.mktemp("em_run") / "faithful_em"
    code, stdout, stderr = run_cli(["fit", "--methods", "em", "--quiet", "--out", out])
    assert code == 0, stderr
    return out


@pytest.fixture(scope="session")
def main_run(tmp_path_factory) -> tuple[Path, str]:
    """The main job, ``bayesmix fit`` with no spec (few draws), run from a fresh folder.

    Returns the output folder (the default ``runs/old_faithful_2d``) and the printed text.
    """
    cwd = tmp_path_factory.mktemp("main_run")
    code, stdout, stderr = run_cli(["fit", *FAST], cwd=cwd)
    assert code == 0, stderr
    return cwd / "runs" / "old_faithful_2d", stdout
