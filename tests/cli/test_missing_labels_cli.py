"""Missing values and partial labels through the ``bayesmix`` command (issue 16).

The files are written here: semicolon-separated with decimal commas, an id column, a text
column of group names with empty cells (the partial labels), empty cells in the features.
EM only (no PyMC compile). Bad inputs end with exit 2 and one line in command-line words.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from .conftest import error_lines, run_cli


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("missing_csvs")
    rng = np.random.default_rng(7)
    n = 150
    z = rng.integers(0, 2, n)
    X = rng.normal(0.0, 1.0, (n, 3)) + 4.0 * z[:, None]
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    hole = rng.uniform(size=X.shape) < 0.15
    hole[hole.all(axis=1), 0] = False
    df = df.mask(hole)
    df.insert(0, "sample", [f"S{i:03d}" for i in range(n)])
    group = np.where(z == 1, "treated", "control").astype(object)
    group[rng.uniform(size=n) > 0.1] = ""
    df["group"] = group
    df.to_csv(d / "lab.csv", sep=";", decimal=",", index=False)
    empty_row = df.copy()
    empty_row.loc[3, ["a", "b", "c"]] = np.nan
    empty_row.to_csv(d / "empty_row.csv", sep=";", decimal=",", index=False)
    empty_col = df.copy()
    empty_col["c"] = np.nan
    empty_col.to_csv(d / "empty_col.csv", sep=";", decimal=",", index=False)
    return d


def _base(files: Path, name: str = "lab.csv") -> list:
    return ["fit", "--data", files / name, "--methods", "em", "-k", "2", "--id-column", "sample"]


def test_missing_model_keeps_every_row(files, tmp_path):
    code, stdout, stderr = run_cli([*_base(files), "--missing", "model"], cwd=tmp_path)
    assert code == 0, stderr
    assert "modelled as missing at random" in stderr + stdout
    membership = pd.read_csv(tmp_path / "runs" / "lab" / "membership.csv")
    assert len(membership) == 150  # no row dropped
    # one line per missing entry, filled in by the EM fit's conditional mean
    table = pd.read_csv(files / "lab.csv", sep=";", decimal=",")
    imputed = pd.read_csv(tmp_path / "runs" / "lab" / "imputed.csv")
    assert "imputed.csv" in stdout and list(imputed.columns) == ["sample", "column", "imputed"]
    holes = table[["a", "b", "c"]].isna().to_numpy()
    assert len(imputed) == int(holes.sum())
    rows, cols = np.nonzero(holes)
    assert imputed["sample"].tolist() == table["sample"].iloc[rows].tolist()
    assert imputed["column"].tolist() == [["a", "b", "c"][c] for c in cols]
    assert imputed["imputed"].between(-4, 8).all()


def test_labels_pin_their_rows(files, tmp_path):
    code, stdout, stderr = run_cli(
        [*_base(files), "--missing", "model", "--labels", "group"], cwd=tmp_path
    )
    assert code == 0, stderr
    assert "as partial labels" in stderr + stdout
    assert "'control' -> component 0, 'treated' -> component 1" in stderr + stdout
    table = pd.read_csv(files / "lab.csv", sep=";", decimal=",")
    membership = pd.read_csv(tmp_path / "runs" / "lab" / "membership.csv")
    known = table["group"].notna()
    expected = (table.loc[known, "group"] == "treated").astype(int).to_numpy()
    # the given labels are listed, and the fitted components follow them
    assert np.array_equal(membership.loc[known.to_numpy(), "label"].to_numpy(), expected)
    assert membership.loc[~known.to_numpy(), "label"].isna().all()
    assert np.array_equal(membership.loc[known.to_numpy(), "component"].to_numpy(), expected)


@pytest.mark.parametrize(
    ("name", "extra", "needle"),
    [
        ("lab.csv", [], "--missing model"),
        ("empty_row.csv", ["--missing", "model"], "every value missing"),
        ("empty_col.csv", ["--missing", "model"], "with every value missing"),
        ("lab.csv", ["--missing", "model", "--dropna"], "--dropna and --missing model disagree"),
        ("lab.csv", ["--missing", "model", "--labels", "grup"], "did you mean 'group'"),
        ("lab.csv", ["--missing", "drop", "-k", "1", "--labels", "group"], "expected labels 0..0"),
    ],
    ids=["nan", "empty-row", "empty-column", "conflict", "labels-typo", "labels-k"],
)
def test_bad_inputs_exit_2_with_one_line(files, tmp_path, name, extra, needle):
    code, _, stderr = run_cli([*_base(files, name), *extra], cwd=tmp_path)
    lines = error_lines(stderr)
    assert code == 2, stderr
    assert len(lines) == 1 and needle in lines[0], lines
    assert "Traceback" not in stderr and "missing='model'" not in stderr


def test_categorical_missing_answers_are_imputed_as_levels(tmp_path):
    """A latent class fit with missing answers: imputed.csv names the most probable level."""
    rng = np.random.default_rng(3)
    n = 200
    z = rng.integers(0, 2, n)
    p_yes = np.where(z == 1, 0.9, 0.15)
    df = pd.DataFrame(
        {
            f"q{d}": np.where(rng.uniform(size=n) < p_yes, "yes", "no").astype(object)
            for d in range(3)
        }
    )
    df = df.mask(rng.uniform(size=df.shape) < 0.15)
    df.loc[df.isna().all(axis=1), "q0"] = "yes"
    df.to_csv(tmp_path / "lca.csv", index=False)
    argv = ["fit", "--data", tmp_path / "lca.csv", "--family", "categorical", "-k", "2"]
    code, _, stderr = run_cli([*argv, "--methods", "em", "--missing", "model"], cwd=tmp_path)
    assert code == 0, stderr
    imputed = pd.read_csv(tmp_path / "runs" / "lca" / "imputed.csv")
    assert len(imputed) == int(df.isna().to_numpy().sum())
    assert set(imputed["imputed"]) <= {"yes", "no"}
    assert imputed["probability"].between(0.5, 1.0).all()
    # a row whose observed answers are all "yes" gets "yes" for its missing one
    answers = df.to_numpy()
    for _, entry in imputed.iterrows():
        seen = [a for a in answers[int(entry["row"])] if isinstance(a, str)]
        if len(seen) == 2 and set(seen) == {"yes"}:
            assert entry["imputed"] == "yes"
