"""Count and survey data through the CLI and the result tree (Poisson and categorical families).

Text answers are the features of a categorical (latent class) model: they are kept as levels,
their names reach the summary table, the figures and new samples.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import poisson

from bayesmix import plotting
from bayesmix._validation import DataError
from bayesmix.config import ModelSpec
from bayesmix.data import load_table
from bayesmix.inference import fit_em
from bayesmix.results import compare_estimates

from .conftest import run_cli

LEVELS = {"colour": ["blue", "green", "red"], "answer": ["no", "yes"]}


@pytest.fixture(scope="module")
def survey_csv(tmp_path_factory):
    rng = np.random.default_rng(0)
    n = 120
    z = rng.integers(0, 2, size=n)
    colour = np.where(
        z == 0, rng.choice(3, n, p=[0.8, 0.1, 0.1]), rng.choice(3, n, p=[0.1, 0.1, 0.8])
    )
    answer = np.where(z == 0, rng.random(n) < 0.2, rng.random(n) < 0.9).astype(int)
    df = pd.DataFrame(
        {
            "id": [f"p{i}" for i in range(n)],
            "colour": np.asarray(LEVELS["colour"])[colour],
            "answer": np.asarray(LEVELS["answer"])[answer],
        }
    )
    path = tmp_path_factory.mktemp("survey") / "survey.csv"
    df.to_csv(path, index=False)
    return path


def test_load_table_keeps_text_columns_only_when_asked(survey_csv):
    with pytest.raises(DataError, match="no numeric column"):
        load_table(survey_csv, id_column="id")
    text = load_table(survey_csv, id_column="id", text=True)
    assert list(text.columns) == ["colour", "answer"]
    assert text["colour"].iloc[:3].tolist() == pd.read_csv(survey_csv)["colour"].iloc[:3].tolist()


def test_level_names_reach_the_tree_and_the_table(survey_csv):
    X = load_table(survey_csv, id_column="id", text=True)
    tree = fit_em(ModelSpec("categorical", 2), X, random_state=0)
    stored = json.loads(tree["observed_data"].attrs["levels"])
    assert stored == LEVELS  # sorted distinct values of each text column
    codes = tree["observed_data"]["x"].values
    for j, col in enumerate(X.columns):
        np.testing.assert_array_equal(np.asarray(LEVELS[col])[codes[:, j]], X[col].to_numpy())
    table = compare_estimates(tree)
    probs = table[table["parameter"] == "probs"]
    # answer has 2 levels, colour 3: no row for the padded third level of answer
    assert len(probs) == 2 * (3 + 2)
    assert set(probs.loc[probs["feature"] == "colour", "level"]) == set(LEVELS["colour"])
    assert set(probs.loc[probs["feature"] == "answer", "level"]) == set(LEVELS["answer"])


def test_cli_survey_fit_writes_level_names(survey_csv, tmp_path):
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(
        [
            "fit",
            "--data",
            survey_csv,
            "--family",
            "categorical",
            "-k",
            "2",
            "--id-column",
            "id",
            "--methods",
            "em",
            "--quiet",
            "--out",
            out,
        ]
    )
    assert code == 0, stderr
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary["level"].dropna()) == {"blue", "green", "red", "no", "yes"}
    assert (out / "item_profiles.png").is_file()
    membership = pd.read_csv(out / "membership.csv")
    assert membership.iloc[0, 0] == "p0"
    code, _, stderr = run_cli(
        ["sample", out / "result.nc", "-n", "50", "--seed", "0", "--out", tmp_path / "new.csv"]
    )
    assert code == 0, stderr
    new = pd.read_csv(tmp_path / "new.csv")
    assert set(new["colour"]) <= set(LEVELS["colour"]) and set(new["answer"]) <= {"no", "yes"}


def test_count_histogram_draws_the_observed_shares_and_the_fitted_pmf():
    rng = np.random.default_rng(2)
    x = np.r_[rng.poisson(1.0, 150), rng.poisson(6.0, 100)][:, None]
    tree = fit_em(ModelSpec("poisson", 2), x, random_state=0)
    fig = plotting.plot_count_histogram(tree)
    ax = fig.axes[0]
    heights = [p.get_height() for p in ax.patches]
    np.testing.assert_allclose(heights, np.bincount(x[:, 0]) / len(x))
    w = tree["em"]["w"].values
    rate = tree["em"]["rate"].values[:, 0]
    total = [ln for ln in ax.lines if ln.get_label().startswith("mixture")][0]
    grid = total.get_xdata()
    expected = (w[None] * poisson.pmf(grid[:, None], rate[None])).sum(1)
    np.testing.assert_allclose(total.get_ydata(), expected, rtol=1e-10)
    fig.canvas.draw()
    ticks = ax.get_xticks()
    np.testing.assert_array_equal(ticks, np.round(ticks))  # counts: whole-number ticks


def test_cli_counts_fit_draws_the_counts_figure(tmp_path):
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"arrivals": np.r_[rng.poisson(2, 80), rng.poisson(9, 40)]})
    path = tmp_path / "arrivals.csv"
    df.to_csv(path, index=False)
    code, stdout, stderr = run_cli(
        [
            "fit",
            "--data",
            path,
            "--family",
            "poisson",
            "--methods",
            "em",
            "--quiet",
            "--out",
            tmp_path / "out",
        ]
    )
    assert code == 0, stderr
    assert (tmp_path / "out" / "counts.png").is_file()
    assert "rate" in stdout
    # the report's spec table shows what a Poisson model reads, not the other families' keys
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    spec_table = page[page.index("<h2>Spec</h2>") : page.index("<h2>Estimates</h2>")]
    assert ">weights_alpha<" in spec_table and ">family<" in spec_table
    for other in ("beta_a", "lkj_eta", "dof_shape", "covariance", "ordered"):
        assert f">{other}<" not in spec_table
    assert "probability mass of each weighted component" in page  # the counts caption
    # non-counts are refused in the CLI's words, exit 2
    df.assign(arrivals=df["arrivals"] + 0.5).to_csv(path, index=False)
    code, _, stderr = run_cli(
        [
            "fit",
            "--data",
            path,
            "--family",
            "poisson",
            "--methods",
            "em",
            "--out",
            tmp_path / "out2",
        ]
    )
    assert code == 2 and "counts" in stderr and "Traceback" not in stderr


def test_select_k_takes_text_answers(survey_csv, tmp_path):
    from bayesmix.results import select_k

    X = load_table(survey_csv, id_column="id", text=True)
    table = select_k(X, [1, 2, 3], family="categorical", random_state=0, n_init=2)
    free = sum(len(v) - 1 for v in LEVELS.values())  # per class: 2 + 1
    np.testing.assert_array_equal(table["n_parameters"], [k * free + k - 1 for k in (1, 2, 3)])
    assert table.attrs["recommended"]["bic"] == 2
    code, stdout, stderr = run_cli(
        [
            "select",
            "--data",
            survey_csv,
            "--family",
            "categorical",
            "--id-column",
            "id",
            "--k",
            "1..3",
            "--quiet",
            "--out",
            tmp_path / "sel",
        ]
    )
    assert code == 0, stderr
    assert "recommended K: bic 2" in stdout
