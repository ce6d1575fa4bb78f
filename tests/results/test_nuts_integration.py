"""Results code on real NUTS output (bayesmix.inference); each model is compiled once."""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pytest
import xarray as xr

from bayesmix.config import ModelSpec
from bayesmix.data import load_old_faithful, make_gaussian_mixture
from bayesmix.results import (
    compare_estimates,
    diagnose,
    label_switching_report,
    load,
    relabel,
    save,
)

pytestmark = pytest.mark.slow

PERM = np.array([1, 2, 0])


def _permute_point(ds: xr.Dataset, perm: np.ndarray) -> xr.Dataset:
    out = ds.copy()
    for name in ds.data_vars:
        if "component" in ds[name].dims:
            out[name] = ds[name].copy(data=ds[name].isel(component=perm).values)
    return out


def _concat_chains(trees: list[xr.DataTree]) -> xr.DataTree:
    out = trees[0].copy()
    for group in ("posterior", "sample_stats", "log_likelihood"):
        parts = [t[group].to_dataset() for t in trees]
        ds = xr.concat(parts, dim="chain", combine_attrs="drop_conflicts")
        out[group] = xr.DataTree(ds.assign_coords(chain=np.arange(ds.sizes["chain"])))
    return out


@pytest.fixture(scope="module")
def switched_nuts():
    """Chains 0-1 start at the EM solution, chains 2-3 at the same solution relabelled."""
    from bayesmix.inference import fit_em, sample_nuts

    X, _, _ = make_gaussian_mixture(300, 3, 2, separation=6.0, random_state=4)
    spec = ModelSpec(family="gaussian", n_components=3, covariance="full")
    base = fit_em(spec, X, random_state=0)
    swapped = base.copy()
    swapped["em"] = xr.DataTree(_permute_point(base["em"].to_dataset(), PERM))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = sample_nuts(spec, X, draws=1000, tune=500, chains=2, random_seed=1, result=base.copy())
        b = sample_nuts(spec, X, draws=1000, tune=500, chains=2, random_seed=2, result=swapped)
    return _concat_chains([a, b]), X


@pytest.mark.parametrize("method", ["stephens", "pivot"])
def test_real_label_switching_is_undone(switched_nuts, method):
    tree, _ = switched_nuts
    mu_before = tree["posterior"]["mu"].mean("draw").values  # (chain, K, D)
    # chains 2-3 really carry the permuted labels
    np.testing.assert_allclose(mu_before[2], mu_before[0][PERM], atol=0.3)
    out = relabel(tree, method=method, reference="em")
    attrs = out["relabel"].attrs
    print(method, {k: attrs[k] for k in ("max_rhat_before", "max_rhat_after", "n_switched_draws")})
    assert attrs["max_rhat_before"] > 1.1
    assert attrs["max_rhat_after"] < 1.01
    rhat = az.rhat(out["posterior"].to_dataset()[["w", "mu", "sigma"]])
    assert max(float(rhat[v].max()) for v in rhat.data_vars) < 1.01
    # the EM estimate is matched to the right component
    post_mu = out["posterior"]["mu"].mean(("chain", "draw")).values
    np.testing.assert_allclose(post_mu, out["em"]["mu"].values, atol=0.3)
    perm = out["relabel"]["permutation"].values
    assert (perm[:2] == np.arange(3)).mean() > 0.99
    assert (perm[2:] == np.argsort(PERM)).all(axis=-1).mean() > 0.99
    rep = label_switching_report(out)
    assert rep["chains"]["fraction_permuted"].iloc[2:].min() > 0.99
    xr.testing.assert_identical(
        out["log_likelihood"].to_dataset(), tree["log_likelihood"].to_dataset()
    )
    diag_before = diagnose(tree)
    assert any("label switching" in w for w in diag_before.warnings)


@pytest.fixture(scope="module")
def faithful_fit():
    from bayesmix.inference import fit_em, fit_map, sample_nuts

    X = load_old_faithful()
    spec = ModelSpec(family="gaussian", n_components=2, covariance="full")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tree = fit_em(spec, X, random_state=0)
        tree = fit_map(spec, X, random_seed=0, result=tree)
        tree = sample_nuts(spec, X, draws=500, tune=500, chains=4, random_seed=3, result=tree)
    return tree


def test_faithful_comparison_table(faithful_fit):
    tree = relabel(faithful_fit, method="stephens", reference="em")
    assert tree["relabel"].attrs["n_switched_draws"] == 0
    table = compare_estimates(tree)
    print(table)
    numeric = ["em", "map", "mean", "sd", "lower", "upper", "r_hat", "ess_bulk", "ess_tail"]
    assert table[[*numeric, "em_z", "em_quantile", "component"]].notna().all().all()
    assert table.loc[table["parameter"] != "w", "feature"].notna().all()
    matrix = table["parameter"].isin(["cov", "corr"])
    assert table.loc[matrix, "feature_bis"].notna().all()
    assert len(table) == 2 + 4 + 4 + 6 + 2  # w, mu, sigma, cov (lower), corr (below diag)
    post = tree["posterior"]
    for name, sel in (
        ("mu", {"component": 1, "feature": "waiting"}),
        ("w", {"component": 0}),
        ("cov", {"component": 0, "feature": "waiting", "feature_bis": "eruptions"}),
    ):
        draws = post[name].sel(sel).values
        flat = draws.ravel()
        row = table[table["parameter"] == name]
        for key, val in sel.items():
            row = row[row[key] == val]
        row = row.iloc[0]
        assert row["mean"] == pytest.approx(np.mean(flat))
        assert row["sd"] == pytest.approx(np.std(flat, ddof=1))
        assert row["lower"] == pytest.approx(np.quantile(flat, 0.03))
        assert row["upper"] == pytest.approx(np.quantile(flat, 0.97))
        assert row["r_hat"] == pytest.approx(float(az.rhat(draws)))
        assert row["em"] == pytest.approx(float(tree["em"][name].sel(sel)))
        assert row["map"] == pytest.approx(float(tree["map"][name].sel(sel)))
    # sensible: converged, and EM / MAP (same priors) sit inside the posterior
    assert (table["r_hat"] < 1.05).all()
    assert (table["ess_bulk"] > 100).all()
    assert (table["em_z"].abs() < 3).all()
    assert ((table["map"] - table["mean"]).abs() < 3 * table["sd"]).all()
    waiting = table[(table["parameter"] == "mu") & (table["feature"] == "waiting")]
    np.testing.assert_allclose(sorted(waiting["mean"]), [54.6, 80.0], atol=1.5)


def test_faithful_diagnose_and_round_trip(faithful_fit, tmp_path):
    diag = diagnose(faithful_fit)
    print(diag)
    assert diag.n_switched_draws == 0
    assert diag.occupied_components == {0: 2, 1: 2, 2: 2, 3: 2}
    assert diag.n_high_pareto_k is not None
    path = save(faithful_fit, tmp_path / "faithful.nc")
    back = load(path)
    expected = faithful_fit.copy()
    expected.attrs["checksum"] = back.attrs["checksum"]
    for node in expected.subtree:
        a = node.to_dataset(inherit=False)
        b = back[node.path].to_dataset(inherit=False)
        assert b.identical(a), node.path
    assert back.attrs["spec"] == faithful_fit.attrs["spec"]
