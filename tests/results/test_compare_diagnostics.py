from __future__ import annotations

import arviz as az
import numpy as np
import pytest
import xarray as xr

from bayesmix._validation import ParameterError
from bayesmix.results import compare_estimates, diagnose, relabel
from bayesmix.results.compare import COLUMNS


@pytest.fixture(scope="module")
def relabelled(switched_tree):
    return relabel(switched_tree[0], method="pivot", reference="em")


def test_table_columns_and_rows(relabelled):
    table = compare_estimates(relabelled)
    expected = [*COLUMNS[:3], "feature_bis", *COLUMNS[3:], "em_quantile"]
    assert list(table.columns) == expected
    counts = table["parameter"].value_counts()
    # K=3, D=2: w 3, mu 6, sigma 6, cov lower triangle with diagonal 3*3, corr below diag 3*1
    assert counts.to_dict() == {"w": 3, "mu": 6, "sigma": 6, "cov": 9, "corr": 3}
    cov_rows = table[table["parameter"] == "cov"]
    assert set(zip(cov_rows["feature"], cov_rows["feature_bis"], strict=True)) == {
        ("a", "a"),
        ("b", "a"),
        ("b", "b"),
    }
    assert table[list(COLUMNS[3:])].notna().all().all()


def test_table_values_against_numpy_and_arviz(relabelled):
    table = compare_estimates(relabelled, ci_prob=0.9)
    post = relabelled["posterior"]
    row = table[(table["parameter"] == "mu") & (table["component"] == 2)]
    row = row[row["feature"] == "b"].iloc[0]
    draws = post["mu"].sel(component=2, feature="b").values  # (chain, draw)
    flat = draws.ravel()
    assert row["mean"] == pytest.approx(np.mean(flat))
    assert row["sd"] == pytest.approx(np.std(flat, ddof=1))
    assert row["lower"] == pytest.approx(np.quantile(flat, 0.05))
    assert row["upper"] == pytest.approx(np.quantile(flat, 0.95))
    assert row["r_hat"] == pytest.approx(float(az.rhat(draws)))
    assert row["ess_bulk"] == pytest.approx(float(az.ess(draws, method="bulk")))
    em = relabelled["em"]["mu"].sel(component=2, feature="b").item()
    assert row["em"] == em
    assert row["map"] == pytest.approx(relabelled["map"]["mu"].sel(component=2, feature="b"))
    assert row["em_z"] == pytest.approx((em - np.mean(flat)) / np.std(flat, ddof=1))
    assert row["em_quantile"] == pytest.approx(np.mean(flat < em))
    # the EM estimate is the truth here, so it sits inside the 90% intervals
    assert (table["em_z"].abs() < 4).all()
    cov = table[(table["parameter"] == "cov") & (table["component"] == 0)]
    cov = cov[(cov["feature"] == "b") & (cov["feature_bis"] == "a")].iloc[0]
    flat_cov = post["cov"].sel(component=0, feature="b", feature_bis="a").values.ravel()
    assert cov["mean"] == pytest.approx(flat_cov.mean())


def test_missing_groups_give_nan_and_display_is_rounded(switched_tree):
    tree, _ = switched_tree
    bare = tree.copy()
    del bare["em"]
    del bare["map"]
    table = compare_estimates(bare)
    assert table["em"].isna().all() and table["map"].isna().all()
    assert table["em_z"].isna().all()
    text = repr(compare_estimates(tree))
    first = text.splitlines()[1]
    assert "parameter" in text.splitlines()[0]
    # four significant digits on screen, full precision underneath
    assert all(len(tok.replace("-", "").replace(".", "")) <= 5 for tok in first.split()[4:])
    with pytest.raises(ParameterError, match="ci_prob"):
        compare_estimates(tree, ci_prob=94)


def test_one_dimensional_posterior_without_matrices():
    rng = np.random.default_rng(3)
    post = xr.Dataset(
        {
            "w": (("chain", "draw", "component"), rng.dirichlet([50, 50], size=(2, 100))),
            "mu": (("chain", "draw", "component", "feature"), rng.normal(size=(2, 100, 2, 1))),
        },
        coords={"component": [0, 1], "feature": ["x0"]},
    )
    table = compare_estimates(xr.DataTree.from_dict({"posterior": post}))
    assert "feature_bis" not in table
    assert len(table) == 4
    assert table["component"].tolist() == [0, 1, 0, 1]


def test_diagnose_flags_switching_and_rhat(switched_tree):
    tree, _ = switched_tree
    diag = diagnose(tree)
    assert diag.max_rhat > 1.1
    text = " ".join(diag.warnings)
    assert "R-hat" in text
    assert "label switching detected" in text
    assert diag.n_switched_draws == 200 + 100
    assert diag.n_divergences == 0
    assert diag.occupied_components == {0: 3, 1: 3, 2: 3, 3: 3}
    assert "Problems found" in str(diag)
    assert not diag.ok


def test_diagnose_clean_tree(clean_tree):
    tree, _ = clean_tree
    diag = diagnose(tree)
    assert diag.max_rhat < 1.01
    assert diag.min_ess_bulk > 400
    assert diag.n_switched_draws == 0
    assert diag.n_high_pareto_k == 0
    assert diag.warnings == []
    assert "No problems found" in str(diag)
    assert set(diag.table.columns) >= {"parameter", "r_hat", "ess_bulk", "ess_tail", "ok"}
    assert diag.table["ok"].all()


def test_diagnose_divergences_empty_components_and_low_ess(clean_tree):
    tree, _ = clean_tree
    tree = tree.copy()
    stats = tree["sample_stats"].to_dataset()
    div = np.zeros(stats["diverging"].shape, dtype=bool)
    div[1, :7] = True
    stats["diverging"] = (("chain", "draw"), div)
    tree["sample_stats"] = xr.DataTree(stats)
    post = tree["posterior"].to_dataset()
    w = post["w"].values.copy()
    w[3] = np.array([0.7, 0.295, 0.005])  # chain 3 empties component 2
    # make chain 0 sticky (autocorrelated): repeat every draw 10 times
    w[0] = np.repeat(w[0, ::10], 10, axis=0)
    post["w"] = (("chain", "draw", "component"), w)
    tree["posterior"] = xr.DataTree(post)
    diag = diagnose(tree)
    assert diag.n_divergences == 7
    assert diag.occupied_components == {0: 3, 1: 3, 2: 3, 3: 2}
    text = "\n".join(diag.warnings)
    assert "7 divergent transitions" in text
    assert "chains disagree on the number of occupied components" in text
    assert "ESS" in text
    assert diag.min_ess_bulk < 400


def test_diagnose_pareto_k(clean_tree):
    tree, _ = clean_tree
    tree = tree.copy()
    ll = tree["log_likelihood"].to_dataset()
    vals = ll["x"].values.copy()
    rng = np.random.default_rng(0)
    vals[:, :, 0] = -np.exp(rng.normal(0, 2, vals.shape[:2]))  # one wild observation
    ll["x"] = (ll["x"].dims, vals)
    tree["log_likelihood"] = xr.DataTree(ll)
    diag = diagnose(tree)
    assert diag.n_high_pareto_k >= 1
    assert any("Pareto k" in m for m in diag.warnings)


def _point_only(tree: xr.DataTree) -> xr.DataTree:
    return xr.DataTree.from_dict(
        {g: tree[g].to_dataset() for g in ("em", "map", "observed_data") if g in tree.children}
    )


def test_table_without_posterior_lists_point_estimates(clean_tree):
    tree, _ = clean_tree
    point = _point_only(tree)
    table = compare_estimates(point)
    full = compare_estimates(tree)
    # the same rows, EM and MAP values as with a posterior, posterior columns empty
    np.testing.assert_array_equal(table["em"].to_numpy(), full["em"].to_numpy())
    np.testing.assert_array_equal(table["map"].to_numpy(), full["map"].to_numpy())
    assert table[["mean", "sd", "lower", "upper", "r_hat", "em_z"]].isna().all().all()
    with pytest.raises(ValueError, match="posterior', 'advi', 'map' or 'em'"):
        compare_estimates(xr.DataTree.from_dict({"observed_data": tree["observed_data"]}))


def test_diagnose_without_posterior_reports_em_and_map(clean_tree):
    tree, _ = clean_tree
    point = _point_only(tree)
    point["em"].attrs.update(converged=False, n_iter=100, n_init=3, method="ml")
    point["map"].attrs.update(starts_agree=False, n_starts=4, logp=-1.0)
    diag = diagnose(point)
    assert diag.n_draws == 0 and not diag.ok
    assert any("max_iter" in w for w in diag.warnings)
    assert any("different optima" in w for w in diag.warnings)
    text = str(diag)
    assert "did not converge after 100 iterations" in text
    assert "No posterior draws" in text
