"""Sample weights above the EM engine: graph log posterior, inference, select_k, the CLI.

Frequency weights mean repeated rows: every check compares a weighted fit of distinct rows
with the same fit of the rows repeated (the EM engine's own checks are in
``tests/em/test_em_sample_weight.py``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayesmix._validation import DataError, ParameterError
from bayesmix.config import ModelSpec, RunSpec, resolve_priors, spec_from_dict
from bayesmix.data import load_death_notices
from bayesmix.graphs import build_model
from bayesmix.inference import fit_em, run
from bayesmix.results import select_k

from .conftest import run_cli


def _weighted_and_repeated(family, rng):
    if family == "poisson":
        X = rng.poisson(3.0, size=(25, 2)).astype(float)
    elif family == "bernoulli":
        X = (rng.random((25, 3)) < 0.4).astype(float)
    else:
        X = rng.normal(size=(25, 2)) @ np.array([[1.0, 0.5], [0.0, 0.8]])
    w = rng.integers(0, 4, size=25).astype(float)
    w[0] = 2.0
    return X, w, np.repeat(X, w.astype(int), axis=0)


@pytest.mark.parametrize(
    "spec",
    [
        ModelSpec("gaussian", 2, "full"),
        ModelSpec("gaussian", 2, "diag"),
        ModelSpec("poisson", 2),
        ModelSpec("bernoulli", 2),
    ],
    ids=["gaussian-full", "gaussian-diag", "poisson", "bernoulli"],
)
def test_graph_log_posterior_of_integer_weights_is_that_of_repeated_rows(spec):
    rng = np.random.default_rng(1)
    X, w, rep = _weighted_and_repeated(spec.family, rng)
    # the data-scaled priors are those of the repeated rows too
    for key, value in resolve_priors(spec, X, w).items():
        np.testing.assert_allclose(value, resolve_priors(spec, rep)[key], rtol=1e-12)
    weighted = build_model(spec, X, sample_weight=w)
    repeated = build_model(spec, rep)
    f_w, f_r = weighted.compile_logp(), repeated.compile_logp()
    start = weighted.initial_point(0)
    for _ in range(3):
        point = {k: v + 0.3 * rng.normal(size=np.shape(v)) for k, v in start.items()}
        assert f_w(point) == pytest.approx(f_r(point), rel=1e-10, abs=1e-9)
    # and weights of one change nothing
    ones = build_model(spec, X, sample_weight=np.ones(len(X))).compile_logp()
    plain = build_model(spec, X).compile_logp()
    assert ones(start) == pytest.approx(plain(start), rel=1e-12)


def test_graph_refuses_bad_weights():
    X = np.random.default_rng(0).normal(size=(10, 2))
    spec = ModelSpec("gaussian", 2, "diag")
    with pytest.raises(DataError, match="sample_weight"):
        build_model(spec, X, sample_weight=-np.ones(10))
    with pytest.raises(DataError, match="shape"):
        build_model(spec, X, sample_weight=np.ones(9))
    with pytest.raises(DataError, match="NaN"):
        build_model(spec, X, sample_weight=np.r_[np.nan, np.ones(9)])
    with pytest.raises(ParameterError, match="minibatch"):
        build_model(spec, X, sample_weight=np.ones(10), minibatch=5)


def test_fit_em_with_weights_equals_repeated_rows_and_stores_them():
    table = load_death_notices(expand=False)
    rows = load_death_notices()
    spec = ModelSpec("poisson", 2)
    a = fit_em(spec, table[["deaths"]], sample_weight=table["days"], random_state=0, tol=1e-10)
    b = fit_em(spec, rows, random_state=0, tol=1e-10)
    for name in ("w", "rate"):
        np.testing.assert_allclose(a["em"][name].values, b["em"][name].values, rtol=1e-8)
    np.testing.assert_array_equal(a["observed_data"]["sample_weight"].values, table["days"])
    assert "sample_weight" not in b["observed_data"]


def test_select_k_with_weights_equals_repeated_rows():
    table = load_death_notices(expand=False)
    rows = load_death_notices()
    a = select_k(
        table[["deaths"]],
        [1, 2],
        family="poisson",
        sample_weight=table["days"],
        random_state=0,
        n_init=2,
    )
    b = select_k(rows, [1, 2], family="poisson", random_state=0, n_init=2)
    for col in ("n_parameters", "log_likelihood", "bic", "aic"):
        np.testing.assert_allclose(a[col].to_numpy(float), b[col].to_numpy(float), rtol=1e-6)
    with pytest.raises(ParameterError, match="bayesian"):
        select_k(
            table[["deaths"]], [1], family="poisson", sample_weight=table["days"], bayesian=True
        )


def test_run_reads_the_weights_column_of_the_spec():
    spec = spec_from_dict(
        {
            "data": {"path": "builtin:death_notices_table", "weights": "days"},
            "model": {"family": "poisson", "components": 2},
            "fit": {"methods": ["em"]},
        }
    )
    tree = run(spec)
    assert tree["observed_data"]["x"].shape == (10, 1)
    np.testing.assert_array_equal(
        tree["observed_data"]["sample_weight"].values, load_death_notices(False)["days"]
    )
    repeated = run(RunSpec(data=spec.data, model=spec.model, fit=spec.fit), load_death_notices())
    np.testing.assert_allclose(tree["em"]["rate"].values, repeated["em"]["rate"].values, rtol=1e-6)


def test_cli_weights_column_and_its_errors(tmp_path):
    df = pd.DataFrame({"count": [0, 1, 2, 3, 5, 8], "n": [10, 20, 15, 5, 2, 1]})
    good = tmp_path / "table.csv"
    df.to_csv(good, index=False)
    code, stdout, stderr = run_cli(
        [
            "fit",
            "--data",
            good,
            "--family",
            "poisson",
            "--weights",
            "n",
            "--methods",
            "em",
            "--quiet",
            "--out",
            tmp_path / "out",
        ]
    )
    assert code == 0, stderr
    assert "rate" in stdout
    bad = tmp_path / "bad.csv"
    df.assign(n=[10, -1, 15, 5, 2, 1]).to_csv(bad, index=False)
    code, _, stderr = run_cli(
        [
            "fit",
            "--data",
            bad,
            "--family",
            "poisson",
            "--weights",
            "n",
            "--methods",
            "em",
            "--out",
            tmp_path / "out2",
        ]
    )
    assert code == 2 and "Traceback" not in stderr
    assert "negative" in stderr and "--weights" in stderr
    code, _, stderr = run_cli(
        [
            "fit",
            "--data",
            good,
            "--family",
            "poisson",
            "--weights",
            "nope",
            "--methods",
            "em",
            "--out",
            tmp_path / "out3",
        ]
    )
    assert code == 2 and "nope" in stderr
