"""A researcher's first hour with their own CSV, through the real ``bayesmix`` command (issue 12).

Every test here runs ``bayesmix.cli.main`` on files it writes itself, EM only where it can
(no PyMC compile), and checks what a user reads: the folder name, the lines printed, the files
written and their permissions.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayesmix as bm
from bayesmix.em import GaussianMixtureEM

from .conftest import run_cli


@pytest.fixture(scope="module")
def csvs(tmp_path_factory) -> Path:
    """The researcher's files: three clusters; with ids, text and a missing value; an outlier."""
    d = tmp_path_factory.mktemp("csvs")
    rng = np.random.default_rng(1)
    centres = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    X = np.vstack([rng.normal(c, 1.0, size=(60, 2)) for c in centres])
    three = pd.DataFrame(X, columns=["a", "b"])
    three.to_csv(d / "three.csv", index=False)
    patients = three.copy()
    patients.insert(0, "patient", [f"P{i:03d}" for i in range(len(three))])
    patients["ward"] = rng.choice(["north", "south"], len(three))
    patients.loc[5, "a"] = np.nan
    patients.to_csv(d / "patients.csv", index=False)
    y = np.r_[rng.normal(0.0, 1.0, 150), rng.normal(6.0, 1.0, 150), 1e4]
    pd.DataFrame({"y": y}).to_csv(d / "outlier.csv", index=False)
    return d


def _stage_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("bayesmix: [")]


def test_run_is_named_after_its_data(csvs, tmp_path):
    """Item 1: 'runs/three', 'three: ...' and the report title, not old_faithful_2d."""
    code, stdout, stderr = run_cli(
        ["fit", "--data", csvs / "three.csv", "--methods", "em", "-k", "3"], cwd=tmp_path
    )
    assert code == 0, stderr
    out = tmp_path / "runs" / "three"
    assert out.is_dir() and not (tmp_path / "runs" / "old_faithful_2d").exists()
    assert stdout.startswith("three: gaussian mixture, K=3")
    assert "<title>bayesmix: three</title>" in (out / "report.html").read_text()
    # a second fit of the same data says the folder exists: runs/three, not the main job's
    code, _, stderr = run_cli(
        ["fit", "--data", csvs / "three.csv", "--methods", "em"], cwd=tmp_path
    )
    assert code == 2 and "'runs/three' already exists" in stderr


def test_spec_name_and_name_option_win(csvs, tmp_path):
    spec = tmp_path / "study.toml"
    spec.write_text('name = "pilot"\n[fit]\nmethods = ["em"]\n')
    code, stdout, stderr = run_cli(["fit", spec, "--data", csvs / "three.csv"], cwd=tmp_path)
    assert code == 0, stderr
    assert (tmp_path / "runs" / "pilot").is_dir() and stdout.startswith("pilot:")
    code, stdout, stderr = run_cli(
        ["fit", "--data", csvs / "three.csv", "--methods", "em", "--name", "trial 2"],
        cwd=tmp_path,
    )
    assert code == 0, stderr
    assert (tmp_path / "runs" / "trial 2").is_dir() and stdout.startswith("trial 2:")


def test_progress_lines_when_piped_and_quiet(csvs, tmp_path):
    """Item 8: one stamped line per stage on stderr (not a terminal here); -q silences them."""
    code, _, stderr = run_cli(
        ["fit", "--data", csvs / "three.csv", "--methods", "em", "--out", tmp_path / "a"]
    )
    assert code == 0
    lines = _stage_lines(stderr)
    text = "\n".join(lines)
    for stage in ("loaded three.csv: 180 rows x 2", "EM: K=2", "plots", "report.html", "done"):
        assert stage in text, text
    stamps = [float(re.match(r"bayesmix: \[\s*([\d.]+) s\]", ln).group(1)) for ln in lines]
    assert stamps == sorted(stamps)
    code, _, stderr = run_cli(
        ["fit", "--data", csvs / "three.csv", "--methods", "em", "--out", tmp_path / "b", "-q"]
    )
    assert code == 0 and stderr == ""


def test_outlier_component_is_reported(csvs, tmp_path):
    """Item 3: EM gives the point at 1e4 its own component; the diagnostics and report say so."""
    out = tmp_path / "o"
    code, stdout, stderr = run_cli(
        ["fit", "--data", csvs / "outlier.csv", "--methods", "em", "-k", "3", "--out", out]
    )
    assert code == 0, stderr
    em = GaussianMixtureEM(3, n_init=5, random_state=0).fit(pd.read_csv(csvs / "outlier.csv"))
    assert em.weights_.min() < 0.01  # the reference fit isolates the outlier too
    assert "No problems found" not in stdout
    assert re.search(r"component \d is degenerate: it holds about 1 of 301", stdout), stdout
    report = (out / "report.html").read_text()
    assert "No problems found" not in report and "is degenerate" in report


def test_library_warnings_reach_stderr_diagnostics_and_report(csvs, tmp_path, monkeypatch):
    """Items 3 and 9: a warning raised during the fit is printed as one 'bayesmix: warning:'
    line (no file path, no source line, CLI words), and kept in the result, the diagnostics
    and the report."""
    import warnings

    import bayesmix.inference._run as run_module
    from bayesmix.em import DegenerateComponentWarning

    real = run_module.fit_em

    def fit_em_that_warns(*args, **kwargs):
        tree = real(*args, **kwargs)
        warnings.warn(
            "GaussianMixtureEM: component(s) [1] collapsed onto repeated points; use fewer "
            "components, or call select_k",
            DegenerateComponentWarning,
            stacklevel=2,
        )
        return tree

    monkeypatch.setattr(run_module, "fit_em", fit_em_that_warns)
    out = tmp_path / "w"
    code, stdout, stderr = run_cli(
        ["fit", "--data", csvs / "three.csv", "--methods", "em", "--out", out]
    )
    assert code == 0, stderr
    warn = [ln for ln in stderr.splitlines() if ln.startswith("bayesmix: warning:")]
    assert len(warn) == 1, stderr
    assert "collapsed onto repeated points" in warn[0] and "'bayesmix select'" in warn[0]
    assert not re.search(r"\.py:\d+", stderr) and "warnings.warn" not in stderr
    result = bm.results.load(out / "result.nc")
    assert result.attrs["warnings"] == [
        "EM: component(s) [1] collapsed onto repeated points; use fewer components, or call "
        "select_k"
    ]
    assert "collapsed onto repeated points" in stdout and "No problems found" not in stdout
    report = (out / "report.html").read_text()
    assert "collapsed onto repeated points" in report
    assert "select_k" not in report and "&#x27;bayesmix select&#x27;" in report  # CLI words


def test_membership_csv_with_ids_and_dropna(csvs, tmp_path):
    """Items 11 and 12: --dropna drops the incomplete row and says so; membership.csv keeps ids."""
    out = tmp_path / "p"
    argv = ["fit", "--data", csvs / "patients.csv", "--methods", "em", "-k", "3", "--out", out]
    code, _, stderr = run_cli(argv)
    assert code == 2 and "--dropna" in stderr and "df.dropna" not in stderr
    code, stdout, stderr = run_cli([*argv, "--id-column", "patient", "--dropna"])
    assert code == 0, stderr
    assert re.search(r"dropped 1 of 180 rows", stderr), stderr
    assert "ward" in stderr  # the text column is left out, and the user is told
    member = pd.read_csv(out / "membership.csv")
    assert list(member.columns) == ["patient", "component", "p0", "p1", "p2"]
    assert len(member) == 179 and "P005" not in set(member["patient"])
    assert member["patient"].iloc[:6].tolist() == ["P000", "P001", "P002", "P003", "P004", "P006"]
    probs = member[["p0", "p1", "p2"]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(member["component"], probs.argmax(axis=1))
    # the probabilities are EM's responsibilities, and the ids are the result's obs_id
    result = bm.results.load(out / "result.nc")
    assert [str(v) for v in result["observed_data"]["x"].coords["obs_id"].values[:2]] == [
        "P000",
        "P001",
    ]
    ref = bm.inference.membership(result, group="em")["mean"].transpose("obs_id", "component")
    np.testing.assert_allclose(probs, ref.values, atol=1e-12)


def test_em_only_table_has_no_empty_columns(csvs, tmp_path):
    """Item 13: an EM-only table shows the columns that have values, not ten empty ones."""
    code, stdout, _ = run_cli(
        ["fit", "--data", csvs / "three.csv", "--methods", "em", "--out", tmp_path / "e"]
    )
    assert code == 0
    header = next(ln for ln in stdout.splitlines() if ln.strip().startswith("parameter"))
    assert header.split() == ["parameter", "component", "feature", "feature_bis", "em"]


def test_select_refuses_k_and_takes_several_covariances(csvs, tmp_path):
    """Items 6 and 13: -k is refused in select; --covariance takes several; enough digits."""
    code, _, stderr = run_cli(["select", "--data", csvs / "three.csv", "-k", "3"])
    assert code == 2 and "--k 1..6" in stderr
    out = tmp_path / "sel"
    code, stdout, stderr = run_cli(
        [
            "select",
            "--data",
            csvs / "three.csv",
            "--k",
            "1..4",
            "--covariance",
            "full",
            "diag",
            "--out",
            out,
        ]
    )
    assert code == 0, stderr
    table = pd.read_csv(out / "k_selection.csv")
    assert sorted(set(table["covariance_type"])) == ["diag", "full"]
    # log-likelihoods printed with two decimals, so near values can be told apart
    for ll in table["log_likelihood"]:
        assert f"{ll:.2f}" in stdout
    assert "K=1" in stderr and "K=4" in stderr  # one progress line per K


def test_family_error_lists_choices_once():
    code, _, stderr = run_cli(["fit", "--family", "gamma"])
    assert code == 2
    assert stderr.count("bernoulli") == 1 and "[model]" not in stderr


def test_outputs_get_the_usual_permissions(csvs, tmp_path):
    """Item 14: every file the command writes is rw-r--r-- under umask 022, not rw-------."""
    old = os.umask(0o022)
    try:
        out = tmp_path / "perm"
        code, _, stderr = run_cli(
            ["fit", "--data", csvs / "three.csv", "--methods", "em", "--out", out]
        )
        assert code == 0, stderr
        new = tmp_path / "new.csv"
        code, _, stderr = run_cli(["sample", out / "result.nc", "-n", "5", "--out", new])
        assert code == 0, stderr
    finally:
        os.umask(old)
    files = [*out.iterdir(), new]
    assert len(files) >= 6
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o644, f
    assert stat.S_IMODE(out.stat().st_mode) == 0o755


def test_command_caches_bytecode(tmp_path):
    """Item 15: with PYTHONDONTWRITEBYTECODE set, the command still writes .pyc files for what
    it imports, NumPy and pandas included (so runs after the first start fast), without uv
    compiling every file on every 'uv run' (no compile-bytecode setting)."""
    prefix = tmp_path / "pycache"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": str(prefix)}
    proc = subprocess.run(
        [sys.executable, "-m", "bayesmix", "--version"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0 and proc.stdout.startswith("bayesmix "), proc.stderr
    cached = {p.parent.name + "/" + p.name.split(".")[0] for p in prefix.rglob("*.pyc")}
    assert {"numpy/__init__", "pandas/__init__", "bayesmix/cli"} <= cached, sorted(cached)[:20]
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert "compile-bytecode" not in pyproject
    assert 'bayesmix = "bayesmix.__main__:main"' in pyproject


def test_start_bar_on_a_terminal(capsys):
    """Item 8: on a terminal the CLI draws a bar over EM's (and MAP's) starts (one line)."""
    from bayesmix.cli import _start_bar

    X = np.r_[np.zeros((5, 1)), np.ones((5, 1))] + np.linspace(0, 0.1, 10)[:, None]
    with _start_bar(True):
        GaussianMixtureEM(2, n_init=5, random_state=0).fit(X)
    with _start_bar(False):
        GaussianMixtureEM(2, n_init=5, random_state=0).fit(X)
    err = capsys.readouterr().err
    frames = err.split("\r")[1:]
    assert [f.split("] ")[1].strip() for f in frames] == [f"{i}/5" for i in range(1, 6)]
    assert frames[-1] == "bayesmix: starts [####################] 5/5\n"


def test_semicolon_decimal_comma_csv_is_read_as_numbers(csvs, tmp_path):
    """Item 2: a European export ('a;b', '3,572;7,333') is fitted as two numeric columns."""
    X = pd.read_csv(csvs / "three.csv")
    path = tmp_path / "euro.csv"
    lines = ["a;b"] + [f"{a:.3f};{b:.3f}".replace(".", ",") for a, b in X.to_numpy()]
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "euro"
    code, stdout, stderr = run_cli(
        ["fit", "--data", path, "--methods", "em", "-k", "3", "--out", out]
    )
    assert code == 0, stderr
    assert "read as semicolon-separated with decimal commas" in stderr
    result = bm.results.load(out / "result.nc")
    np.testing.assert_allclose(result["observed_data"]["x"].values, X.round(3).to_numpy())
    assert "semicolon-separated" in (out / "report.html").read_text()


def test_advi_results_are_shown(tmp_path):
    """Item 5: --methods em,advi shows the ADVI draws, labelled as an approximation.

    The main job's model (Old Faithful, K = 2, full), whose ADVI graph another test compiles
    too: one compile for both on a cold cache.
    """
    out = tmp_path / "advi"
    code, stdout, stderr = run_cli(["fit", "--methods", "em,advi", "--out", out])
    assert code == 0, stderr
    table = pd.read_csv(out / "summary.csv")
    assert {"advi_mean", "advi_sd"} <= set(table.columns)
    assert table["advi_mean"].notna().all()
    assert "No posterior draws" not in stdout and "approximation" in stdout
    w = table[table["parameter"] == "w"]
    np.testing.assert_allclose(w["advi_mean"], w["em"], atol=0.05)


def test_a_plot_that_fails_is_named(csvs, tmp_path, monkeypatch):
    """Item 7: a plot that cannot be drawn is named (with its reason) on stderr and in the
    report; the other files are written."""
    import bayesmix.plotting as plotting

    def broken(*args, **kwargs):
        raise ValueError("no room for 52 panels")

    monkeypatch.setattr(plotting.plan, "plot_em_history", broken)
    out = tmp_path / "broken"
    code, _, stderr = run_cli(
        ["fit", "--data", csvs / "three.csv", "--methods", "em", "--out", out]
    )
    assert code == 0, stderr
    assert "plot em_history could not be drawn (ValueError: no room for 52 panels)" in stderr
    assert not (out / "em_history.png").exists() and (out / "clusters_2d.png").exists()
    report = (out / "report.html").read_text()
    assert "Plots that could not be drawn" in report
    assert "<b>em history</b>: ValueError: no room for 52 panels" in report
